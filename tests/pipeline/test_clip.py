"""Clip + resample: exact frame and sample counts, key-frame starts, size, rotation, determinism."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.clip import ClipOptions, clip_count, cut_clips

SMALL = ClipOptions(width=320, height=180, max_clips=10)


def decoded_video(path: Path) -> tuple[list[float], list[bool], tuple[int, int]]:
    """(frame times, key-frame flags, (width, height)) of a file's video, fully decoded."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return (
        [f.time for f in frames],
        [f.key_frame for f in frames],
        (frames[0].width, frames[0].height),
    )


def ffmpeg_audio_samples(path: Path) -> int:
    """Samples per channel that the ffmpeg CLI decodes (it applies the mp4 edit list)."""
    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return len(raw) // 2


def test_clip_count():
    opts = ClipOptions(max_clips=3)
    assert [clip_count(s, opts) for s in (9.99, 10.0, 29.9, 30.0, 95.0)] == [0, 1, 2, 3, 3]


@pytest.fixture(scope="module")
def two_clips(build_media: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("clips")
    return cut_clips(build_media / "good.mp4", 0.5, 2, ["s_00", "s_01"], out, SMALL)


def test_clips_are_exact(two_clips):
    clips = two_clips
    assert [c.start for c in clips] == [0.0, 10.0]
    for clip in clips:
        times, keys, size = decoded_video(clip.files["mp4"])
        assert size == (320, 180)
        assert len(times) == 300 == clip.num_frames  # 10 s at 30 fps
        assert keys[0], "a clip must start on a key frame"
        assert np.allclose(np.diff(times), 1 / 30)
        assert times[0] == 0.0
        # the flac holds exactly 10 s of stereo 44.1 kHz audio
        with av.open(str(clip.files["flac"])) as c:
            stream = c.streams.audio[0]
            assert (stream.rate, stream.channels) == (44100, 2)
            assert sum(f.samples for f in c.decode(stream)) == 441000 == clip.num_samples
        # the mp4's AAC track is 10 s once the edit list hides the encoder priming
        with av.open(str(clip.files["mp4"])) as c:
            a = c.streams.audio[0]
            assert (a.codec_context.name, a.rate, a.duration * a.time_base) == ("aac", 44100, 10)
        assert ffmpeg_audio_samples(clip.files["mp4"]) == 441000
        thumb = Image.open(clip.files["jpg"])
        assert thumb.format == "JPEG" and thumb.size == (320, 180)
        assert -40 < clip.loudness_db < -5 and clip.motion > 0.001


def test_clips_follow_the_source(two_clips):
    """testsrc2 draws a moving pattern and pink noise never repeats: the second clip is cut from
    later in the source, not a copy of the first."""
    a, b = two_clips
    assert a.files["mp4"].read_bytes() != b.files["mp4"].read_bytes()
    assert a.files["flac"].read_bytes() != b.files["flac"].read_bytes()


@pytest.mark.slow
def test_same_input_same_bytes(build_media: Path, tmp_path: Path):
    """Four cuts of the same source agree byte for byte. (With two libx264 frame threads, 3 of 8
    such cuts of good.mp4 came out different: see clip.X264_THREADS.)"""
    keys = ["k_00", "k_01"]
    runs = [
        cut_clips(build_media / "good.mp4", 0.0, 2, keys, tmp_path / f"{i}", SMALL)
        for i in range(4)
    ]
    for clips in runs[1:]:
        for clip, first in zip(clips, runs[0], strict=True):
            for ext in ("mp4", "flac", "jpg"):
                assert clip.files[ext].read_bytes() == first.files[ext].read_bytes(), ext


def test_rotation_is_honoured(build_media: Path, tmp_path: Path):
    """rotated.mp4 stores red-over-blue landscape frames with a 90-degree display matrix: shown
    upright they are portrait, red and blue side by side; the crop must show that."""
    clip = cut_clips(build_media / "rotated.mp4", 0.0, 1, ["r_00"], tmp_path, SMALL)[0]
    with av.open(str(clip.files["mp4"])) as c:
        rgb = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    left, right = rgb[:, :100].mean(axis=(0, 1)), rgb[:, -100:].mean(axis=(0, 1))
    top, bottom = rgb[:40].mean(axis=(0, 1)), rgb[-40:].mean(axis=(0, 1))
    assert abs(left - right).max() > 100, "the two colours sit side by side"
    assert abs(top - bottom).max() < 30, "not one above the other"


@pytest.mark.slow
def test_full_size_clip_from_real_media(shared_media: Path, tmp_path: Path):
    """The default 1280x720 / 30 fps format from a real 24 fps VP8/Vorbis clip."""
    src = shared_media / "video_landscape-animated__moviepy__big_buck_bunny_0_30.webm"
    clip = cut_clips(src, 3.0, 1, ["bbb_00"], tmp_path, ClipOptions(max_clips=1))[0]
    times, keys, size = decoded_video(clip.files["mp4"])
    assert (len(times), keys[0], size) == (300, True, (1280, 720))
    assert ffmpeg_audio_samples(clip.files["mp4"]) == 441000 == clip.num_samples


def test_missing_input_raises(tmp_path: Path):
    from landscape_av.ffmpeg import FFmpegError

    with pytest.raises(FFmpegError, match="ffmpeg failed"):
        cut_clips(tmp_path / "nope.mp4", 0.0, 1, ["x_00"], tmp_path / "out", SMALL)


def test_short_source_keeps_only_exact_clips(build_media: Path, tmp_path: Path):
    """Asked for two clips from 12 s (a duration the probe overstated), the cut keeps the exact
    first clip and drops the short second one."""
    clips = cut_clips(build_media / "good2.mp4", 0.0, 2, ["g_00", "g_01"], tmp_path, SMALL)
    assert [c.num_frames for c in clips] == [300]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g_00.flac", "g_00.jpg", "g_00.mp4"]


def test_a_clip_too_large_for_a_shard_member_fails_its_source(
    build_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A clip larger than the readers take as a shard member (noise at 1280x720 makes 141 MB
    mp4s) fails its source at the clip stage with one line naming the file; it is never sharded."""
    import landscape_av.pipeline.clip as clip
    from landscape_av.pipeline.source_stages import SourceError, failing_as

    monkeypatch.setattr(clip, "MAX_MEMBER_BYTES", 50_000)  # the 320x180 clips are larger
    with pytest.raises(SourceError) as failed, failing_as("clip"):
        cut_clips(build_media / "good2.mp4", 0.0, 1, ["g_00"], tmp_path, SMALL)
    err = failed.value
    assert (err.stage, err.reason) == ("clip", "too_large")
    assert err.detail.startswith("g_00.mp4: ") and "over the 50,000 a shard member" in err.detail
