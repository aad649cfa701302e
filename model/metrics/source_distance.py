"""Distance of a generated video to the real clip whose sound made it (`model.evaluate`'s "source").

Frames are float arrays in [-1, 1], the generated video's frame k against the real clip's frame at
the same time; MSE is the mean squared difference and LPIPS (AlexNet v0.1,
`model.metrics.networks.FrameLpips`) a distance per frame, both averaged over the frames. It is not
the paper's Table 3b, which measures the inversion G(E(x)) of LHQ images.
"""

from __future__ import annotations

import numpy as np


def mse(frames: np.ndarray, reference: np.ndarray) -> float:
    """Mean squared error of two frame stacks of equal shape, values in [-1, 1]."""
    a, b = np.asarray(frames, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {list(a.shape)} vs {list(b.shape)}")
    return float(np.mean((a - b) ** 2))
