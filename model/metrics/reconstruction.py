"""Reconstruction errors between frames and their references (Table 3b's MSE and LPIPS).

Frames are float arrays in [-1, 1]; MSE is the mean squared difference per video and LPIPS (Zhang et
al. 2018) comes from `model.metrics.networks.Lpips` as distances per frame; both are then averaged.
"""

from __future__ import annotations

import numpy as np


def mse(frames: np.ndarray, reference: np.ndarray) -> float:
    """Mean squared error of two frame stacks of equal shape, values in [-1, 1]."""
    a, b = np.asarray(frames, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {list(a.shape)} vs {list(b.shape)}")
    return float(np.mean((a - b) ** 2))
