"""Fréchet distance between Gaussians fitted to two feature sets (FVD with I3D features).

    FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))

in float64, with `scipy.linalg.sqrtm` and its real part, as StyleGAN-V's `frechet_video_distance.py`
computes it. The covariance is StyleGAN-V's (`metric_utils.FeatureStats.get_mean_cov`): features
cast to float32, then sum(x x^T) / N - mu mu^T in float64, the biased estimate; `biased=False` gives
`np.cov`'s N - 1 (the estimate of ASVA's and MM-Diffusion's code). The linear algebra runs on one
BLAS thread: split over more, its sums round differently, and FVD would change with OMP_NUM_THREADS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class Gaussian:
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    count: int  # samples it was fitted to


def fit_gaussian(features: np.ndarray, biased: bool = True) -> Gaussian:
    """Mean and covariance (biased: / N, StyleGAN-V; else / (N - 1)) of features [N, D]."""
    x = np.asarray(features, dtype=np.float32).astype(np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {list(x.shape)}")
    n = x.shape[0]
    with threadpool_limits(1):
        if biased:
            mu = x.sum(axis=0) / n
            return Gaussian(mu, x.T @ x / n - np.outer(mu, mu), n)
        return Gaussian(x.mean(axis=0), np.cov(x, rowvar=False), n)


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """Fréchet distance between two Gaussians (see the module docstring)."""
    diff = a.mu - b.mu
    with threadpool_limits(1):
        root = np.real(scipy.linalg.sqrtm(a.sigma @ b.sigma))
    return float(diff @ diff + np.trace(a.sigma + b.sigma - 2.0 * root))
