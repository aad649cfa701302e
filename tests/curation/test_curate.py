"""The curation stage on real media, through the clip stage's own decode: a nature recording with
a voice mixed in is rejected for speech (its measured share matching the voice's length) and the
same recording without the voice is kept. (Two real shots joined by a hard cut: test_shots finds
the cut's frame, test_build its clip rejected and the clip before it kept.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape_av.curation.models import INSTALL, CurationUnavailable, ModelFile
from landscape_av.pipeline.clip import ClipOptions, cut_clips
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.curate import CurateOptions, curate
from landscape_av.schema import CLIP_REJECT_REASONS

from .conftest import Voiced

SMALL = ClipOptions(width=320, height=180, max_clips=2)


def judge(path: Path, opts: CurateOptions, clip: ClipOptions, out: Path):
    keys = [f"k_{i:02d}" for i in range(clip.max_clips)]
    clips = cut_clips(path, 0.0, clip.max_clips, keys, out, clip, opts.taps())
    return clips, curate(clips, opts, clip)


@pytest.mark.slow
@pytest.mark.usefixtures("curate_extra")
def test_speech_is_measured_and_rejected(voiced: Voiced, tmp_path: Path):
    opts = CurateOptions(speech=True)
    clips, result = judge(voiced.with_voice, opts, SMALL, tmp_path / "with")
    first, second = result.verdicts
    truth = (voiced.end - voiced.start) / SMALL.seconds  # the voice lies inside the first clip
    assert abs(first.speech - truth) < 0.05, (first.speech, truth)
    assert first.reason == "speech" and f"{first.speech:.1%}" in first.detail
    assert second.reason is None and second.speech == 0.0
    assert all(c.sound is not None and c.sound.size == 10 * 16000 for c in clips)

    _, plain = judge(voiced.without_voice, opts, SMALL, tmp_path / "without")
    assert [v.reason for v in plain.verdicts] == [None, None]
    assert all(v.speech == 0.0 for v in plain.verdicts)


def test_taps_off_leave_the_clip_stage_as_it_was(tmp_path: Path):
    """Without taps, no stage copy is asked of ffmpeg (the pinned-bytes test holds the rest)."""
    assert CurateOptions().taps().sound_rate == 0 and CurateOptions().taps().frame_size is None
    assert not CurateOptions().on and CurateOptions().models() == {}


def test_reasons_are_ordered_and_documented():
    assert list(CLIP_REJECT_REASONS) == ["shot_cut", "speech"]


def test_a_missing_package_says_which_extra_to_install():
    missing = ModelFile("speech", "no-such-distribution-xyz", "x/y.jit", "MIT")
    with pytest.raises(CurationUnavailable) as e:
        missing.locate()
    message = str(e.value)
    assert "\n" not in message and "--speech" in message and INSTALL in message
    assert "no-such-distribution-xyz" in message


def test_build_json_records_a_stage_only_when_it_is_on():
    """A build without curation records what it recorded before curation existed."""
    names = {"speech", "max_speech", "shots", "shot_screen", "shot_threshold"}
    assert not names & BuildConfig().to_json().keys()
    assert not names & BuildConfig().output_fingerprint().keys()
    speech = BuildConfig(curate=CurateOptions(speech=True, max_speech=0.2))
    assert {k: v for k, v in speech.to_json().items() if k in names} == {
        "speech": True,
        "max_speech": 0.2,
    }
    assert speech.output_fingerprint()["max_speech"] == 0.2  # a change redoes the sources
    assert speech.curate.columns() == {"speech"}
    assert set(speech.curate.models()) == {"speech"}
