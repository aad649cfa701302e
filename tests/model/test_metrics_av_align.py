"""AV-Align against an independent transcription of TempoTokens' av_align.py (2025 fix and 2023
release) on fixed cases, and on a made-up clip whose 0.5 px motion sits on its sound's onsets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.metrics.av_align import (
    ONSET_RATE,
    audio_onsets,
    av_align,
    flow_trajectory,
    motion_peaks,
    peak_iou,
)

FPS, SECONDS = 8, 10
ONSETS = (1.0, 2.5, 4.0, 6.0, 7.5, 9.0)


def reference_iou(audio, video, fps, one_to_one):
    """The reference's `calc_intersection_over_union`, transcribed from its text."""
    hits, used = 0, [False] * len(video)
    for a in audio:
        for j, v in enumerate(video):
            if one_to_one and used[j]:
                continue
            if v - 1 / fps < a and a < v + 1 / fps:
                hits += 1
                used[j] = True
                break
    return hits / (len(audio) + len(video) - hits)


def test_one_video_peak_matches_one_onset_in_the_2025_code_and_several_in_2023():
    audio, video = np.array([1.0, 1.06]), np.array([1.0])
    assert peak_iou(audio, video, 8) == 0.5 == reference_iou(audio, video, 8, True)
    assert (
        peak_iou(audio, video, 8, "av_align_2023") == 2.0 == reference_iou(audio, video, 8, False)
    )


def test_the_window_is_strict_one_frame_of_the_videos_rate():
    assert peak_iou(np.array([1.0]), np.array([1.125]), 8) == 0.0  # exactly one frame apart
    assert peak_iou(np.array([1.0]), np.array([1.12]), 8) == 1.0
    assert peak_iou(np.array([1.0]), np.array([1.04]), 30) == 0.0  # one frame at 30 fps
    assert peak_iou(np.array([]), np.array([]), 8) == 0.0  # the reference divides by zero


def test_never_above_one_and_equal_to_the_transcription_on_random_peaks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        fps = float(rng.choice([4, 8, 24, 30]))
        audio = np.sort(rng.uniform(0, 3, rng.integers(0, 8)))
        video = np.sort(rng.integers(1, 3 * fps, rng.integers(1, 8)) / fps)
        ours = peak_iou(audio, video, fps)
        assert 0.0 <= ours <= 1.0
        assert ours == reference_iou(audio, video, fps, True)
        assert peak_iou(audio, video, fps, "av_align_2023") == reference_iou(
            audio, video, fps, False
        )


def test_motion_peaks_are_strict_maxima_above_the_threshold():
    traj = np.array([0.0, 0.0, 0.5, 0.0, 0.05, 0.0, 0.3, 0.3, 0.0])
    np.testing.assert_allclose(motion_peaks(traj, 8, 0.1), [2 / 8])  # 0.05 too small, 0.3 flat
    np.testing.assert_allclose(motion_peaks(traj, 8, None), [2 / 8, 4 / 8])


def _clicks(rate: int = 44100) -> np.ndarray:
    """Quiet noise with a decaying burst at each onset."""
    rng = np.random.default_rng(0)
    wave = rng.normal(size=rate * SECONDS) * 1e-3
    n = rate // 10
    burst = rng.normal(size=n) * np.exp(-np.arange(n) / (n / 5))
    for t in ONSETS:
        wave[int(t * rate) : int(t * rate) + n] += burst
    return wave.astype(np.float32)


def _half_pixel_steps() -> np.ndarray:
    """A smooth texture that moves by 0.5 px exactly at each onset frame, still otherwise."""
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32) * 255, (0, 0), 3)
    frames, shift = [], 0.0
    onset_frames = {round(t * FPS) for t in ONSETS}
    for k in range(FPS * SECONDS):
        if k in onset_frames:
            shift = 0.5 - shift  # 0 -> 0.5 -> 0 ...: a 0.5 px step each time
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        img = cv2.warpAffine(base, m, (64, 64), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, -1))
    return np.stack(frames)


@pytest.mark.slow
def test_half_pixel_motion_on_the_onsets_scores_one():
    import librosa

    onsets = audio_onsets(librosa.resample(_clicks(), orig_sr=44100, target_sr=ONSET_RATE))
    assert len(onsets) == len(ONSETS) and np.abs(onsets - ONSETS).max() < 1 / FPS
    traj = flow_trajectory(_half_pixel_steps())
    peaks = motion_peaks(traj, FPS, 0.1)
    np.testing.assert_allclose(peaks, ONSETS)
    assert 0.3 < traj[[round(t * FPS) for t in ONSETS]].min() < 1.0  # under the old 1 px cut
    assert av_align(traj, FPS, onsets) == 1.0
    assert av_align(traj, FPS, onsets + 0.5) == 0.0  # the same motion half a second late


def test_trajectory_duplicates_the_first_pair_as_the_reference():
    frames = _half_pixel_steps()[:12]
    traj = flow_trajectory(frames)
    assert len(traj) == len(frames) and traj[0] == traj[1]
