"""Probe and filter: every rejection reason, on generated and on real media."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.filters import (
    MOTION_SIZE,
    FilterOptions,
    Verdict,
    audio_level_db,
    check,
    check_motion,
    frame_motion,
)
from landscape_av.pipeline.probe import ProbeError, probe
from landscape_av.schema import REJECT_REASONS

SMALL = FilterOptions(min_width=320, min_height=180)


def verdict(path: Path, opts: FilterOptions = SMALL, clip_seconds: float = 10.0):
    info = probe(path)
    end = min(info.duration, info.audio_duration or info.duration)
    return check(path, info, 0.0, end, opts, clip_seconds)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("good.mp4", None),
        ("lowres.mp4", "low_resolution"),
        ("noaudio.mp4", "no_audio"),
        ("short.mp4", "too_short"),
        ("silent.mp4", "silent"),
        ("frozen.mp4", None),  # motion is judged on the clips: `check_motion`
    ],
)
def test_rejection_reasons(build_media: Path, name: str, reason: str | None):
    result = verdict(build_media / name)
    assert result.reason == reason
    assert reason is None or reason in REJECT_REASONS
    assert (result.detail == "") == (reason is None)


def test_thresholds_are_options(build_media: Path):
    assert verdict(build_media / "lowres.mp4", FilterOptions(160, 90)).kept
    assert verdict(build_media / "short.mp4", SMALL, clip_seconds=4).kept
    quiet = verdict(build_media / "good.mp4", FilterOptions(320, 180, silence_db=-3)).reason
    assert quiet == "silent"


def test_probe_facts(build_media: Path):
    info = probe(build_media / "good.mp4")
    assert (info.width, info.height, info.fps, info.rotation) == (480, 270, 25.0, 0)
    assert (info.video_codec, info.audio_codec, info.sample_rate, info.channels) == (
        "h264",
        "aac",
        48000,
        1,
    )
    assert info.duration == pytest.approx(22, abs=0.05)
    rotated = probe(build_media / "rotated.mp4")
    assert (rotated.width, rotated.height, rotated.rotation) == (360, 640, 90)


def test_probe_rejects_non_media(build_media: Path):
    with pytest.raises(ProbeError) as e:
        probe(build_media / "broken.mp4")
    assert e.value.reason == "unreadable"


def grey_motion(path: Path, seconds: float) -> float:
    """Motion of the first `seconds` of `path` as the clip stage measures it: 30 fps grey frames
    of MOTION_SIZE."""
    w, h = MOTION_SIZE
    cmd = [ffmpeg_exe(), "-v", "error", "-t", str(seconds), "-i", str(path)]
    cmd += ["-vf", f"fps=30,scale={w}:{h},format=gray", "-f", "rawvideo", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return frame_motion(np.frombuffer(raw, np.uint8).reshape(-1, h, w))


def test_check_motion_rejects_below_the_floor():
    kept = Verdict(None, "", loudness_db=-20.0)
    assert check_motion(kept, 0.002, SMALL) == Verdict(None, "", -20.0, 0.002)
    frozen = check_motion(kept, 0.0004, SMALL)
    assert (frozen.reason, frozen.loudness_db, frozen.motion) == ("frozen", -20.0, 0.0004)
    assert frozen.reason in REJECT_REASONS and "0.00040 < 0.001" in frozen.detail


def test_frozen_floor_separates_stills_from_real_video(build_media: Path, shared_media: Path):
    """The default floor sits between a still picture and real footage, down to a slowly drifting
    storm sky (measured: still 0.0000, sky 0.0026, flower 0.0042, water 0.0050, animation 0.014)."""
    floor = FilterOptions().frozen_floor
    assert grey_motion(build_media / "frozen.mp4", 12) < floor / 4
    for name in (
        "video_thunderstorm__video-lightning-detector__sample_no.mp4",
        "video_waterfall__mdn-interactive-examples__stream-of-water.mp4",
        "video_nature__mdn-interactive-examples__flower.mp4",
        "video_landscape-animated__moviepy__big_buck_bunny_0_30.webm",
    ):
        assert grey_motion(shared_media / name, 2) > floor, name


def test_real_media_verdicts(shared_media: Path):
    """Real files: a digitally silent track, a clip without audio, a 1 s clip, a small real one."""
    small = FilterOptions(320, 180)
    flower = shared_media / "video_nature__mdn-interactive-examples__flower.mp4"
    assert verdict(flower, small, clip_seconds=2).reason == "silent"
    cockatoo = shared_media / "video_odd__imageio-binaries__cockatoo_yuv420.mp4"
    assert verdict(cockatoo, FilterOptions()).reason == "no_audio"
    bunny = shared_media / "video_short__moviepy__big_buck_bunny_432_433.webm"
    assert verdict(bunny, FilterOptions()).reason == "too_short"
    water = shared_media / "video_waterfall__mdn-interactive-examples__stream-of-water.mp4"
    assert verdict(water, FilterOptions()).reason == "low_resolution"
    assert verdict(water, small, clip_seconds=2).kept
    assert -45 < audio_level_db(water, 0, 3) < -30  # a quiet stream: peaks at -14 dB
