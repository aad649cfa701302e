"""Stage 4: cut a source's span into clips of one format, decoding the source once.

One ffmpeg process per source: the span is decoded once, rotated (ffmpeg honours the display
matrix), brought to one frame rate and one size (aspect-preserving scale + centre crop) and one
audio rate and layout, then split into N branches that are each trimmed by frame / sample count and
encoded once: `<key>.mp4` (H.264 + AAC, faststart) and `<key>.flac`. Two more branches give a
mid-clip thumbnail per clip (`<key>.jpg`) and a tiny grey copy of every frame, from which each
clip's motion is measured (the frozen filter's input: no other stage decodes the video); where a
later stage asks (`Taps`), a mono copy of the sound at its rate and an RGB copy of the picture at
its size come out of the same decode, for the clips' curation. Trimming
by counts makes every clip exactly `round(seconds * fps)` frames and `seconds * rate` samples, and
each clip's encoder starts on a key frame.

Each encoder runs on one thread (`X264_THREADS`): libx264's frame threads are not reproducible
here (ffmpeg 9.0 with its bundled x264, veryfast: in runs of 6 identical 2-thread encodes, 1 to 4
came out different; the threaded lookahead is the cause, as `sync-lookahead=0` makes them agree, at
about 10% more time), and one thread gives the same bytes on every machine. The build gets its
parallelism from sources instead: `workers` sources are clipped at once. Measured on 2 cores (see
bench/build_throughput.py): two such one-thread ffmpegs at once take about as long as bare ffmpeg
transcodes of the same spans (same filters and encoder settings: `picture`, `sound`,
`mp4_options`) on all cores; cutting with a segment muxer drifts the audio by up to 1 s.

The graph is built with ffmpeg-python, which only compiles it to arguments; `run_ffmpeg` runs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import ffmpeg
import numpy as np

from landscape_av.corpus.decode import float_pcm, open_media
from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.pipeline.filters import MOTION_SIZE, frame_motion, rms_db
from landscape_av.pipeline.settings import setting, size_setting
from landscape_av.schema import MAX_MEMBER_BYTES

CLIP_EXTS = ("mp4", "flac", "jpg")
THUMB_PATTERN = "thumb-%03d.jpg"
X264_THREADS = 1
"""Threads of each clip encoder: one, so that the bytes never depend on timing (see module doc)."""


@dataclass(frozen=True)
class ClipOptions:
    """Output format of every clip."""

    seconds: float = setting(
        10.0, name="clip_seconds", low=0, low_open=True, help="Length of every clip (s)."
    )
    max_clips: int = setting(10, low=1, help="Clips per source.")
    width: int = size_setting(
        1280, "height", "--size", help="Output WIDTHxHEIGHT (scale to cover, centre crop)."
    )
    height: int = 720
    fps: int = setting(30, low=1, help="Frames per second.")
    crf: int = setting(21, low=0, high=51, help="libx264 quality (lower: better and larger).")
    preset: str = setting("veryfast", help="libx264 preset.")
    keyframe_seconds: float = 1.0  # a key frame every second: readers seek to any second cheaply
    audio_rate: int = setting(44100, low=8000, help="Audio sample rate (Hz).")
    audio_channels: int = 2
    audio_bitrate: str = "192k"
    thumb_width: int = 320

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def samples(self) -> int:
        return round(self.seconds * self.audio_rate)


@dataclass(frozen=True)
class ClipResult:
    """One clip cut from a source: `start` is seconds from the span's start; files by extension."""

    index: int
    start: float
    files: dict[str, Path]
    loudness_db: float
    motion: float
    num_frames: int
    num_samples: int
    sound: np.ndarray | None = None  # the clip's sound as `Taps` asked (mono float), else None
    frames: np.ndarray | None = None  # the clip's frames as `Taps` asked (RGB uint8), else None


@dataclass(frozen=True)
class Taps:
    """More copies of the one decode, for stages that measure the clips (none by default):
    the sound at `sound_rate` Hz, mixed to mono (0: none), and every frame at `frame_size`
    (width, height) RGB (None: none). Both are of the clips' picture and sound, frame and sample
    aligned with them."""

    sound_rate: int = 0
    frame_size: tuple[int, int] | None = None


def clip_count(span: float, opts: ClipOptions) -> int:
    """How many non-overlapping clips fit in `span` seconds (at most `opts.max_clips`)."""
    return max(0, min(opts.max_clips, math.floor(span / opts.seconds + 1e-6)))


def cut_clips(
    path: Path,
    start: float,
    count: int,
    keys: list[str],
    out_dir: Path,
    opts: ClipOptions,
    taps: Taps = Taps(),
) -> list[ClipResult]:
    """Cut `count` consecutive clips from `path` starting at `start` seconds into `out_dir`, named by
    `keys`; returns them with their measured loudness and motion (and what `taps` asks for).
    Trailing clips that come out short (a source shorter than probed) are dropped; raises
    FFmpegError when ffmpeg fails, DamagedSource when it reports an error decoding the span (a
    damaged frame or container: it conceals them and exits 0), ClipError when not even the first
    clip is exact and ClipTooLarge when any clip is larger than a shard member may be."""
    if count < 1 or len(keys) != count:
        raise ValueError(f"need one key per clip: {count} clips, {len(keys)} keys")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = {name: out_dir / file for name, file in _RAW_FILES.items()}
    reported = run_ffmpeg(_ffmpeg_args(path, start, keys, out_dir, raw, opts, taps)).strip()
    if reported:  # ffmpeg conceals what it cannot decode and exits 0: the source is damaged
        lines = [line.strip() for line in reported.splitlines()]
        raise DamagedSource(f"ffmpeg could not decode all of it: {' | '.join(lines[:3])}")
    grey_frames = _read_frames(raw.pop("grey"), MOTION_SIZE, 1)
    sound = _read_sound(raw.pop("sound"), opts.audio_channels) if taps.sound_rate else None
    frames = _read_frames(raw.pop("frames"), taps.frame_size, 3) if taps.frame_size else None
    for i, key in enumerate(keys):
        thumb = out_dir / (THUMB_PATTERN % i)
        if thumb.is_file():
            thumb.replace(out_dir / f"{key}.jpg")
    results = []
    for i, key in enumerate(keys):
        files = {ext: out_dir / f"{key}.{ext}" for ext in CLIP_EXTS}
        try:
            num_frames, num_samples, loudness = _check_outputs(files, opts)
        except ClipError as e:
            if i == 0 or isinstance(e, ClipTooLarge):
                raise
            for late in keys[i:]:  # the source ended early (its duration was overstated):
                for ext in CLIP_EXTS:  # keep the exact clips before
                    (out_dir / f"{late}.{ext}").unlink(missing_ok=True)
            break
        frame_range = slice(i * opts.frames, (i + 1) * opts.frames)
        per_clip = round(opts.seconds * taps.sound_rate)
        results.append(
            ClipResult(
                index=i,
                start=i * opts.seconds,
                files=files,
                loudness_db=loudness,
                motion=frame_motion(grey_frames[frame_range]),
                num_frames=num_frames,
                num_samples=num_samples,
                sound=None if sound is None else sound[i * per_clip : (i + 1) * per_clip],
                frames=None if frames is None else frames[frame_range],
            )
        )
    return results


class ClipError(RuntimeError):
    """An output clip is not exact (a short source, a broken stream)."""


class ClipTooLarge(ClipError):
    """A clip's file is larger than a shard member may be (`schema.MAX_MEMBER_BYTES`)."""


class DamagedSource(RuntimeError):
    """ffmpeg reported errors decoding the source (in any container: it conceals them)."""


def picture(stream: ffmpeg.Stream, opts: ClipOptions) -> ffmpeg.Stream:
    """`stream` as the clips' picture: one frame rate, one size (aspect-preserving scale + centre
    crop), square pixels, yuv420p."""
    w, h = opts.width, opts.height
    return (
        stream.filter("fps", opts.fps)
        .filter("scale", w, h, force_original_aspect_ratio="increase", flags="bicubic")
        .filter("crop", w, h)
        .filter("setsar", 1)
        .filter("format", "yuv420p")
    )


def sound(stream: ffmpeg.Stream, opts: ClipOptions) -> ffmpeg.Stream:
    """`stream` as the clips' sound: one rate and layout, timestamps from 0."""
    layout = {1: "mono", 2: "stereo"}.get(opts.audio_channels, f"{opts.audio_channels}c")
    return stream.filter("aresample", opts.audio_rate, first_pts=0).filter(
        "aformat", sample_fmts="fltp", channel_layouts=layout
    )


def mp4_options(opts: ClipOptions) -> dict[str, Any]:
    """Output options of a clip's mp4: H.264 on `X264_THREADS` with a key frame every
    `keyframe_seconds` (and no others), AAC, faststart, bit-exact."""
    gop = max(1, round(opts.keyframe_seconds * opts.fps))
    return {
        "c:v": "libx264", "preset": opts.preset, "crf": opts.crf, "threads": X264_THREADS,
        "pix_fmt": "yuv420p", "flags:v": "+bitexact", "g": gop, "keyint_min": gop,
        "sc_threshold": 0, "c:a": "aac", "b:a": opts.audio_bitrate, "flags:a": "+bitexact",
        "movflags": "+faststart",
    }  # fmt: skip


_EXACT = {"map_metadata": -1, "map_chapters": -1, "fflags": "+bitexact"}
"""Output options of every clip file: no metadata or chapters of the source, bit-exact muxing."""


_RAW_FILES = {"grey": "motion.gray", "sound": "tap-sound.f32", "frames": "tap-frames.rgb"}
"""Scratch files of the raw copies, in the clip folder while ffmpeg runs."""


def _ffmpeg_args(
    path: Path,
    start: float,
    keys: list[str],
    out_dir: Path,
    raw: dict[str, Path],
    opts: ClipOptions,
    taps: Taps,
) -> list[str]:
    """The one ffmpeg run of a source (see module doc), compiled by ffmpeg-python; `raw` names
    the files of the motion copy ("grey") and of the `taps` ("sound", "frames")."""
    n, frames, samples = len(keys), opts.frames, opts.samples
    source = ffmpeg.input(str(path), ss=f"{start:.6f}", t=f"{n * opts.seconds + 1.0:.6f}")
    video = picture(source.video, opts).split()  # n clips, the thumbnails, the motion copy, taps
    audio = sound(source.audio, opts).asplit()  # per clip: the mp4's and the flac's; the tap

    def cut_audio(i: int, branch: int) -> ffmpeg.Stream:
        part = audio[2 * i + branch].filter(
            "atrim", start_sample=i * samples, end_sample=(i + 1) * samples
        )
        return part.filter("asetpts", "PTS-STARTPTS")

    outputs = []
    for i, key in enumerate(keys):
        clip = video[i].filter("trim", start_frame=i * frames, end_frame=(i + 1) * frames)
        clip = clip.filter("setpts", "PTS-STARTPTS")
        mp4 = str(out_dir / f"{key}.mp4")
        outputs.append(ffmpeg.output(clip, cut_audio(i, 0), mp4, **_EXACT, **mp4_options(opts)))
        flac = {"c:a": "flac", "sample_fmt": "s16", "flags:a": "+bitexact"}
        outputs.append(
            ffmpeg.output(cut_audio(i, 1), str(out_dir / f"{key}.flac"), **_EXACT, **flac)
        )
    # thumbnails: the middle frame of every clip
    thumbs = (
        video[n]
        .filter("trim", end_frame=n * frames)
        .filter("select", f"eq(mod(n,{frames}),{frames // 2})")
        .filter("scale", opts.thumb_width, -2)
        .filter("format", "yuvj420p")
    )
    jpg = {"c:v": "mjpeg", "q:v": 3, "flags:v": "+bitexact", "fps_mode": "passthrough"}
    jpg |= {"frames:v": n, "format": "image2", "start_number": 0}
    outputs.append(ffmpeg.output(thumbs, str(out_dir / THUMB_PATTERN), **_EXACT, **jpg))
    motion = video[n + 1].filter("trim", end_frame=n * frames).filter("scale", *MOTION_SIZE)
    motion = motion.filter("format", "gray")
    outputs.append(ffmpeg.output(motion, str(raw["grey"]), format="rawvideo", pix_fmt="gray"))
    if taps.frame_size:
        tap = video[n + 2].filter("trim", end_frame=n * frames).filter("scale", *taps.frame_size)
        tap = tap.filter("format", "rgb24")
        outputs.append(ffmpeg.output(tap, str(raw["frames"]), format="rawvideo", pix_fmt="rgb24"))
    if taps.sound_rate:
        tap = audio[2 * n].filter("aresample", taps.sound_rate)
        tap = tap.filter("atrim", end_sample=round(n * opts.seconds * taps.sound_rate))
        outputs.append(ffmpeg.output(tap, str(raw["sound"]), format="f32le", acodec="pcm_f32le"))
    return ffmpeg.merge_outputs(*outputs).get_args()


def _read_frames(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """Raw frames of `size` (width, height) with `channels` bytes a pixel; the file is removed."""
    w, h = size
    data = np.fromfile(path, dtype=np.uint8)
    path.unlink()
    frame = w * h * channels
    frames = data[: data.size // frame * frame].reshape(-1, h, w, channels)
    return frames[..., 0] if channels == 1 else frames


def _read_sound(path: Path, channels: int) -> np.ndarray:
    """Raw interleaved float samples, mixed to mono (the mean of the channels); the file is
    removed."""
    data = np.fromfile(path, dtype="<f4")
    path.unlink()
    return data[: data.size // channels * channels].reshape(-1, channels).mean(axis=1)


def _check_outputs(files: dict[str, Path], opts: ClipOptions) -> tuple[int, int, float]:
    """Verify a clip's frame and sample counts without re-decoding its video; returns
    (frames, samples per channel, RMS level of the flac in dBFS)."""
    for file in files.values():  # the readers of shards refuse larger members
        size = file.stat().st_size if file.is_file() else 0
        if size > MAX_MEMBER_BYTES:
            raise ClipTooLarge(
                f"{file.name}: {size:,} bytes, over the {MAX_MEMBER_BYTES:,} a shard member may "
                "hold: a higher --crf or a smaller --size makes it fit"
            )
    try:
        with open_media(files["mp4"], video=False) as container:  # headers and packets
            video, audio = container.streams.video[0], container.streams.audio[0]
            num_frames = video.frames
            mp4_samples = round(audio.duration * audio.time_base * opts.audio_rate)
            first_key = next(p for p in container.demux(video) if p.size).is_keyframe
        with open_media(files["flac"], video=False) as container:
            chunks = [float_pcm(f).ravel() for f in container.decode(audio=0)]
    except (OSError, IndexError, TypeError, StopIteration, av.FFmpegError) as e:
        raise ClipError(f"{files['mp4'].stem}: unreadable output ({e})") from e
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    num_samples = audio.size // opts.audio_channels
    expected = (opts.frames, opts.samples, opts.samples, True)
    got = (num_frames, mp4_samples, num_samples, first_key)
    if got != expected:
        raise ClipError(
            f"{files['mp4'].stem}: (frames, mp4 samples, flac samples, key frame first) = {got}, "
            f"expected {expected}"
        )
    if not files["jpg"].is_file():
        raise ClipError(f"{files['jpg'].name}: no thumbnail written")
    return num_frames, num_samples, rms_db(audio)
