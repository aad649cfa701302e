"""Probe and filter: every rejection reason, on generated and on real media."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape_av.filters import FilterOptions, audio_level_db, check, frame_difference
from landscape_av.probe import ProbeError, probe
from landscape_av.schema import REJECT_REASONS

SMALL = FilterOptions(min_width=320, min_height=180)


def verdict(path: Path, opts: FilterOptions = SMALL):
    info = probe(path)
    return check(path, info, 0.0, min(info.duration, info.audio_duration or info.duration), opts)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("good.mp4", None),
        ("lowres.mp4", "low_resolution"),
        ("noaudio.mp4", "no_audio"),
        ("short.mp4", "too_short"),
        ("silent.mp4", "silent"),
        ("frozen.mp4", "frozen"),
    ],
)
def test_rejection_reasons(build_media: Path, name: str, reason: str | None):
    result = verdict(build_media / name)
    assert result.reason == reason
    assert reason is None or reason in REJECT_REASONS
    assert (result.detail == "") == (reason is None)


def test_thresholds_are_options(build_media: Path):
    assert verdict(build_media / "lowres.mp4", FilterOptions(160, 90)).kept
    assert verdict(build_media / "short.mp4", FilterOptions(320, 180, clip_seconds=4)).kept
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


def test_frozen_floor_separates_stills_from_real_video(build_media: Path, shared_media: Path):
    """The default floor sits between a still picture and real footage, down to a slowly drifting
    storm sky (measured: still 0.0000, sky 0.0017, water 0.0036, flower 0.0047, animation 0.011)."""
    floor = FilterOptions().frozen_floor
    assert frame_difference(build_media / "frozen.mp4", 0, 12) < floor / 4
    for name in (
        "video_thunderstorm__video-lightning-detector__sample_no.mp4",
        "video_waterfall__mdn-interactive-examples__stream-of-water.mp4",
        "video_nature__mdn-interactive-examples__flower.mp4",
        "video_landscape-animated__moviepy__big_buck_bunny_0_30.webm",
    ):
        assert frame_difference(shared_media / name, 0, 2) > floor, name


def test_real_media_verdicts(shared_media: Path):
    """Real files: a digitally silent track, a clip without audio, a 1 s clip, a small real one."""
    short = FilterOptions(320, 180, clip_seconds=2)
    flower = shared_media / "video_nature__mdn-interactive-examples__flower.mp4"
    assert verdict(flower, short).reason == "silent"
    cockatoo = shared_media / "video_odd__imageio-binaries__cockatoo_yuv420.mp4"
    assert verdict(cockatoo, FilterOptions()).reason == "no_audio"
    bunny = shared_media / "video_short__moviepy__big_buck_bunny_432_433.webm"
    assert verdict(bunny, FilterOptions()).reason == "too_short"
    water = shared_media / "video_waterfall__mdn-interactive-examples__stream-of-water.mp4"
    assert verdict(water, FilterOptions()).reason == "low_resolution"
    assert verdict(water, short).kept
    assert -45 < audio_level_db(water, 0, 3) < -30  # a quiet stream: peaks at -14 dB
