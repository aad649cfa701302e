"""AV-Align on made-up clips (flashes at the sound's onsets) and on real recordings."""

from __future__ import annotations

import av
import numpy as np
import pytest

from model.audio import MelConfig, load_wave
from model.metrics.av_align import audio_peaks, av_align, peak_iou, video_peaks

RATE, FPS, SECONDS = MelConfig().sample_rate, 8, 10
ONSETS = (1.0, 2.5, 4.0, 6.0, 7.5, 9.0)


def _clicks() -> np.ndarray:
    """Quiet noise with a decaying burst at each onset."""
    rng = np.random.default_rng(0)
    wave = rng.normal(size=RATE * SECONDS) * 1e-3
    burst = rng.normal(size=4000) * np.exp(-np.arange(4000) / 800)
    for t in ONSETS:
        wave[int(t * RATE) : int(t * RATE) + 4000] += burst
    return wave


def _flashes(shift: float) -> np.ndarray:
    """A dim textured picture with a bright square for one frame at each onset + shift."""
    rng = np.random.default_rng(1)
    base = (rng.random((64, 64)) * 60).astype(np.uint8)
    frames = np.repeat(base[None, :, :, None], FPS * SECONDS, 0).repeat(3, 3)
    for t in ONSETS:
        k = round((t + shift) * FPS)
        if k < len(frames):
            frames[k, 16:48, 16:48] = 255
    return frames


def test_onsets_and_flashes_are_found_where_they_are():
    assert np.abs(audio_peaks(_clicks()) - ONSETS).max() < 1 / FPS
    np.testing.assert_allclose(video_peaks(_flashes(0.0), FPS), ONSETS)


def test_flashes_at_the_onsets_score_near_one_and_shifted_ones_lower():
    aligned = av_align(_flashes(0.0), FPS, _clicks())
    shifted = av_align(_flashes(0.5), FPS, _clicks())
    assert aligned > 0.9 and shifted < aligned - 0.5


def test_peak_iou_counts_matches_within_one_frame():
    assert peak_iou(np.array([1.0, 2.0]), np.array([1.1, 3.0]), fps=8) == pytest.approx(1 / 3)
    assert peak_iou(np.array([]), np.array([]), fps=8) == 0.0
    assert peak_iou(np.array([1.0]), np.array([]), fps=8) == 0.0


@pytest.mark.slow
def test_runs_on_a_real_clip(shared_media):
    path = shared_media / "video_waterfall__mdn-interactive-examples__stream-of-water.mp4"
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    wave, _ = load_wave(path, RATE)
    # gentle water moves under the authors' 1 px threshold; 0.1 px lets its flow peaks count
    assert len(video_peaks(frames, fps)) == 0 and av_align(frames, fps, wave) == 0.0
    assert len(audio_peaks(wave)) > 0 and len(video_peaks(frames, fps, min_flow=0.1)) > 0
    assert 0.0 < av_align(frames, fps, wave, min_flow=0.1) <= 1.0
