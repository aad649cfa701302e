"""Silero VAD as written here against the package's own: the same speech probabilities as its
TorchScript model, the same segments as its `get_speech_timestamps_from_probs`, and a default
--max-speech that keeps every nature recording of ../shared/media and of the demo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape_av.curation.models import SPEECH_MODEL, speech_model
from landscape_av.curation.vad import CHUNK, SAMPLE_RATE, speech_segments, speech_share
from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.curate import CurateOptions

from .conftest import Voiced

pytestmark = pytest.mark.usefixtures("curate_extra")


def sound_16k(path: Path, seconds: float | None = None) -> np.ndarray:
    """Mono 16 kHz float sound of `path` (looped to `seconds` where given)."""
    loop = ["-stream_loop", "-1", "-t", f"{seconds}"] if seconds else []
    cmd = [ffmpeg_exe(), "-v", "error", *loop, "-i", str(path), "-vn", "-ac", "2"]
    cmd += ["-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2).mean(axis=1)


@pytest.fixture(scope="module")
def reference():
    """The package's own utilities (its import sets torch's thread count: put it back)."""
    threads = torch.get_num_threads()
    import silero_vad.utils_vad as utils

    torch.set_num_threads(threads)
    return utils


@pytest.mark.slow
def test_probabilities_match_the_packages_torchscript_model(voiced: Voiced):
    n = round((voiced.start + 1.5) * SAMPLE_RATE) // CHUNK  # up to 1.5 s into the voice
    audio = sound_16k(voiced.with_voice)[: n * CHUNK]
    ours = speech_model()(torch.from_numpy(audio.copy())).numpy()
    scripted = torch.jit.load(str(SPEECH_MODEL.locate())).eval()
    chunks = torch.from_numpy(audio.copy()).view(n, CHUNK)
    with torch.no_grad():
        theirs = np.array([scripted(c[None], SAMPLE_RATE).item() for c in chunks])
    assert ours.shape == theirs.shape and ours.max() > 0.9  # the voice is heard
    assert np.abs(ours - theirs).max() < 1e-5


@pytest.mark.slow
def test_segments_follow_the_packages_rules(voiced: Voiced, reference):
    rng = np.random.default_rng(0)
    real = speech_model()(torch.from_numpy(sound_16k(voiced.with_voice).copy())).numpy()
    cases = [real] + [np.repeat(rng.random(60), rng.integers(1, 12, 60)) for _ in range(40)]
    for probs in cases:
        n = len(probs) * CHUNK - int(rng.integers(0, CHUNK))
        theirs = reference.get_speech_timestamps_from_probs(
            list(map(float, probs)), speech_pad_ms=0, audio_length_samples=n
        )
        assert speech_segments(probs, n) == [(t["start"], t["end"]) for t in theirs]


@pytest.mark.slow
def test_the_default_keeps_the_nature_recordings_and_the_demo(shared_media: Path, tmp_path: Path):
    from landscape_av.sources.demo import make_demo_sources

    limit = CurateOptions().max_speech
    recordings = sorted(p for p in shared_media.iterdir() if p.suffix in (".ogg", ".mp3"))
    demo = make_demo_sources(tmp_path / "demo", size=(64, 36), quiet=True)
    demo_files = [tmp_path / "demo" / s.file for s in demo if s.expect == "ok"]
    assert len(recordings) >= 10 and len(demo_files) >= 9
    for path in [*recordings, *demo_files]:
        audio = sound_16k(
            path, 10.0
        )  # a clip's length (shorter recordings looped, as the demo does)
        share, _ = speech_share(speech_model(), audio)
        assert share <= limit, (path.name, share)
