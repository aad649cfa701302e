"""AV-Align (Yariv et al. 2023): how well motion peaks in the picture meet onsets in the sound.

No learned weights. Audio peaks: onset detection as librosa's `onset_detect` defaults do it,
re-implemented on this package's mel front end (44.1 kHz, n_fft 2048, hop 512, 128 mels): the onset
strength is the mean over mel bands of the positive dB difference to the previous STFT frame,
normalised to [0, 1], and peaks are picked where it is the maximum of [-30 ms, +0 ms], at least
0.07 above its mean over [-100 ms, +100 ms], and 30 ms after the previous onset. Video peaks: mean
magnitude of dense optical flow (OpenCV Farneback, pyr_scale 0.5, 3 levels, window 15, 3 iterations,
poly_n 5, poly_sigma 1.2) from frame i-1 to frame i, at time i/fps; a peak is a strict local maximum
of at least `min_flow` pixels (the authors' code: 1).

Score (the authors' definition): an audio peak is matched when a video peak lies within one frame
(1/fps s) of it; with I matched audio peaks, AV-Align = I / (|A| + |V| - I), and 0 when neither
modality has a peak.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model.audio import TOP_DB, MelConfig, log_mel


def onset_strength(wave: np.ndarray | torch.Tensor, cfg: MelConfig) -> np.ndarray:
    """Onset strength envelope of a mono waveform at `cfg.sample_rate`: [1 + S // hop] in [0, 1]."""
    mel = log_mel(torch.as_tensor(wave, dtype=torch.float32), cfg).double().numpy()  # [M, F]
    flux = np.maximum(0.0, np.diff(mel, axis=1)).mean(axis=0) * TOP_DB  # dB
    env = np.concatenate([[0.0], flux])  # frame f holds the rise into frame f
    env -= env.min()
    return env / env.max() if env.max() > 0 else env


def pick_peaks(
    env: np.ndarray,
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    wait: int,
) -> np.ndarray:
    """Indices n where env[n] is the maximum of env[n-pre_max : n+post_max], at least `delta` above
    the mean of env[n-pre_avg : n+post_avg], and more than `wait` after the previous peak."""
    peaks: list[int] = []
    last = -wait - 1
    for n, value in enumerate(env):
        lo, hi = max(0, n - pre_max), min(len(env), n + post_max)
        if value < env[lo:hi].max():
            continue
        if value < env[max(0, n - pre_avg) : min(len(env), n + post_avg)].mean() + delta:
            continue
        if n - last > wait:
            peaks.append(n)
            last = n
    return np.asarray(peaks, dtype=np.int64)


def audio_peaks(wave: np.ndarray | torch.Tensor, cfg: MelConfig | None = None) -> np.ndarray:
    """Onset times (s) of a mono waveform at `cfg.sample_rate` (see the module docstring)."""
    cfg = cfg or MelConfig()
    rate = cfg.sample_rate / cfg.hop  # envelope frames per second
    frames = lambda seconds: int(seconds * rate)  # noqa: E731
    env = onset_strength(wave, cfg)
    idx = pick_peaks(
        env, frames(0.03), frames(0.0) + 1, frames(0.1), frames(0.1) + 1, 0.07, frames(0.03)
    )
    return idx / rate


def flow_energy(frames: np.ndarray) -> np.ndarray:
    """Mean optical-flow magnitude (px) from frame i-1 to frame i of uint8 [T, H, W, 3]: [T - 1]."""
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for prev, cur in zip(gray[:-1], gray[1:], strict=True):
        flow = cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(float(np.linalg.norm(flow, axis=-1).mean()))
    return np.asarray(out)


def video_peaks(frames: np.ndarray, fps: float, min_flow: float = 1.0) -> np.ndarray:
    """Times (s) of motion peaks of uint8 frames [T, H, W, 3] shown at `fps`."""
    energy = flow_energy(frames)  # energy[k]: motion into frame k + 1
    idx = [
        k
        for k in range(1, len(energy) - 1)
        if energy[k] > energy[k - 1] and energy[k] > energy[k + 1] and energy[k] >= min_flow
    ]
    return (np.asarray(idx, dtype=np.float64) + 1) / fps


def peak_iou(audio: np.ndarray, video: np.ndarray, fps: float) -> float:
    """I / (|A| + |V| - I) with I the audio peaks that have a video peak within 1/fps s."""
    if len(audio) == 0 and len(video) == 0:
        return 0.0
    tol = 1.0 / fps + 1e-9
    hits = sum(bool(len(video)) and bool(np.min(np.abs(video - a)) <= tol) for a in audio)
    return hits / (len(audio) + len(video) - hits)


def av_align(
    frames: np.ndarray,
    fps: float,
    wave: np.ndarray | torch.Tensor,
    cfg: MelConfig | None = None,
    min_flow: float = 1.0,
) -> float:
    """AV-Align of one clip: uint8 frames [T, H, W, 3] at `fps` and its mono waveform."""
    return peak_iou(audio_peaks(wave, cfg), video_peaks(frames, fps, min_flow), fps)
