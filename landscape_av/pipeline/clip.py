"""Stage 4: cut a source's span into clips of one format, decoding the source once.

One ffmpeg process per source: the span is decoded once, rotated (ffmpeg honours the display
matrix), brought to one frame rate and one size (aspect-preserving scale + centre crop) and one
audio rate and layout, then split into N branches that are each trimmed by frame / sample count and
encoded once: `<key>.mp4` (H.264 + AAC, faststart) and `<key>.flac`. Two more branches give a
mid-clip thumbnail per clip (`<key>.jpg`) and a tiny grey copy of every frame, from which each
clip's motion is measured (the frozen filter's input: no other stage decodes the video). Trimming
by counts makes every clip exactly `round(seconds * fps)` frames and `seconds * rate` samples, and
each clip's encoder starts on a key frame.

Each encoder runs on one thread (`X264_THREADS`): libx264's frame threads are not reproducible
here (ffmpeg 9.0 with its bundled x264, veryfast: in runs of 6 identical 2-thread encodes, 1 to 4
came out different; the threaded lookahead is the cause, as `sync-lookahead=0` makes them agree, at
about 10% more time), and one thread gives the same bytes on every machine. The build gets its
parallelism from sources instead: `workers` sources are clipped at once. Measured on 2 cores (see
bench/build_throughput.py): two such one-thread ffmpegs at once take about as long as bare ffmpeg
transcodes of the same spans (same filters and encoder settings: `video_filter`, `audio_filter`,
`mp4_args`) on all cores; cutting with a segment muxer drifts the audio by up to 1 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from landscape_av.corpus.decode import float_pcm, open_media
from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.pipeline.filters import MOTION_SIZE, frame_motion, rms_db

CLIP_EXTS = ("mp4", "flac", "jpg")
THUMB_PATTERN = "thumb-%03d.jpg"
X264_THREADS = 1
"""Threads of each clip encoder: one, so that the bytes never depend on timing (see module doc)."""


@dataclass(frozen=True)
class ClipOptions:
    """Output format of every clip."""

    seconds: float = 10.0
    max_clips: int = 10
    width: int = 1280
    height: int = 720
    fps: int = 30
    crf: int = 21
    preset: str = "veryfast"
    keyframe_seconds: float = 1.0  # a key frame every second: readers seek to any second cheaply
    audio_rate: int = 44100
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


def clip_count(span: float, opts: ClipOptions) -> int:
    """How many non-overlapping clips fit in `span` seconds (at most `opts.max_clips`)."""
    return max(0, min(opts.max_clips, math.floor(span / opts.seconds + 1e-6)))


def cut_clips(
    path: Path, start: float, count: int, keys: list[str], out_dir: Path, opts: ClipOptions
) -> list[ClipResult]:
    """Cut `count` consecutive clips from `path` starting at `start` seconds into `out_dir`, named by
    `keys`; returns them with their measured loudness and motion. Trailing clips that come out
    short (a source shorter than probed) are dropped; raises FFmpegError when ffmpeg fails and
    ClipError when not even the first clip is exact."""
    if count < 1 or len(keys) != count:
        raise ValueError(f"need one key per clip: {count} clips, {len(keys)} keys")
    out_dir.mkdir(parents=True, exist_ok=True)
    grey = out_dir / "motion.gray"
    run_ffmpeg(_ffmpeg_args(path, start, keys, out_dir, grey, opts))
    grey_frames = _read_grey(grey)
    grey.unlink()
    for i, key in enumerate(keys):
        thumb = out_dir / (THUMB_PATTERN % i)
        if thumb.is_file():
            thumb.replace(out_dir / f"{key}.jpg")
    results = []
    for i, key in enumerate(keys):
        files = {ext: out_dir / f"{key}.{ext}" for ext in CLIP_EXTS}
        try:
            num_frames, num_samples, loudness = _check_outputs(files, opts)
        except ClipError:
            if i == 0:
                raise
            for late in keys[i:]:  # the source ended early (its duration was overstated):
                for ext in CLIP_EXTS:  # keep the exact clips before
                    (out_dir / f"{late}.{ext}").unlink(missing_ok=True)
            break
        clip_grey = grey_frames[i * opts.frames : (i + 1) * opts.frames]
        results.append(
            ClipResult(
                index=i,
                start=i * opts.seconds,
                files=files,
                loudness_db=loudness,
                motion=frame_motion(clip_grey),
                num_frames=num_frames,
                num_samples=num_samples,
            )
        )
    return results


class ClipError(RuntimeError):
    """An output clip is not exact (a short source, a broken stream)."""


def video_filter(opts: ClipOptions) -> str:
    """Filter chain to the clips' picture: one frame rate, one size (aspect-preserving scale +
    centre crop), square pixels, yuv420p."""
    w, h = opts.width, opts.height
    return (
        f"fps={opts.fps},scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={w}:{h},setsar=1,format=yuv420p"
    )


def audio_filter(opts: ClipOptions) -> str:
    """Filter chain to the clips' sound: one rate and layout, timestamps from 0."""
    layout = {1: "mono", 2: "stereo"}.get(opts.audio_channels, f"{opts.audio_channels}c")
    return (
        f"aresample={opts.audio_rate}:first_pts=0,aformat=sample_fmts=fltp:channel_layouts={layout}"
    )


def mp4_args(opts: ClipOptions) -> list[str]:
    """Output options of a clip's mp4: H.264 with a key frame every `keyframe_seconds` (and no
    others), AAC, faststart, bit-exact."""
    gop = str(max(1, round(opts.keyframe_seconds * opts.fps)))
    return [
        "-c:v", "libx264", "-preset", opts.preset, "-crf", str(opts.crf),
        "-threads", str(X264_THREADS), "-pix_fmt", "yuv420p", "-flags:v", "+bitexact",
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", opts.audio_bitrate, "-flags:a", "+bitexact",
        "-movflags", "+faststart",
    ]  # fmt: skip


def _ffmpeg_args(
    path: Path, start: float, keys: list[str], out_dir: Path, grey: Path, opts: ClipOptions
) -> list[str]:
    n, frames, samples = len(keys), opts.frames, opts.samples
    span = n * opts.seconds
    graph = [
        f"[0:v]{video_filter(opts)},split={n + 2}"
        + "".join(f"[v{i}]" for i in range(n))
        + "[vt][vg]",
        f"[0:a]{audio_filter(opts)},asplit={2 * n}" + "".join(f"[a{i}][f{i}]" for i in range(n)),
        # thumbnails: the middle frame of every clip
        f"[vt]trim=end_frame={n * frames},select='eq(mod(n\\,{frames})\\,{frames // 2})',"
        f"scale={opts.thumb_width}:-2,format=yuvj420p[thumbs]",
        f"[vg]trim=end_frame={n * frames},scale={MOTION_SIZE[0]}:{MOTION_SIZE[1]},format=gray[grey]",
    ]
    for i in range(n):
        graph.append(
            f"[v{i}]trim=start_frame={i * frames}:end_frame={(i + 1) * frames},"
            f"setpts=PTS-STARTPTS[vo{i}]"
        )
        for branch in ("a", "f"):
            graph.append(
                f"[{branch}{i}]atrim=start_sample={i * samples}:end_sample={(i + 1) * samples},"
                f"asetpts=PTS-STARTPTS[{branch}o{i}]"
            )
    exact = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact"]
    args = ["-ss", f"{start:.6f}", "-t", f"{span + 1.0:.6f}", "-i", str(path)]
    args += ["-filter_complex", ";".join(graph)]
    for i, key in enumerate(keys):
        args += ["-map", f"[vo{i}]", "-map", f"[ao{i}]", *exact, *mp4_args(opts)]
        args += [str(out_dir / f"{key}.mp4")]
        args += ["-map", f"[fo{i}]", *exact, "-c:a", "flac", "-sample_fmt", "s16"]
        args += ["-flags:a", "+bitexact"]
        args += [str(out_dir / f"{key}.flac")]
    args += ["-map", "[thumbs]", *exact, "-c:v", "mjpeg", "-q:v", "3", "-flags:v", "+bitexact"]
    args += ["-fps_mode", "passthrough", "-frames:v", str(n), "-f", "image2"]
    args += ["-start_number", "0", str(out_dir / THUMB_PATTERN)]
    args += ["-map", "[grey]", "-f", "rawvideo", "-pix_fmt", "gray", str(grey)]
    return args


def _read_grey(path: Path) -> np.ndarray:
    w, h = MOTION_SIZE
    data = np.fromfile(path, dtype=np.uint8)
    return data[: data.size // (w * h) * w * h].reshape(-1, h, w)


def _check_outputs(files: dict[str, Path], opts: ClipOptions) -> tuple[int, int, float]:
    """Verify a clip's frame and sample counts without re-decoding its video; returns
    (frames, samples per channel, RMS level of the flac in dBFS)."""
    try:
        with open_media(files["mp4"]) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            num_frames = video.frames
            mp4_samples = round(audio.duration * audio.time_base * opts.audio_rate)
            first_key = next(p for p in container.demux(video) if p.size).is_keyframe
        with open_media(files["flac"]) as container:
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
