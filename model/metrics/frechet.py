"""Fréchet distance between Gaussians fitted to two feature sets (FVD with I3D features).

    FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))

in float64, with `scipy.linalg.sqrtm` and its real part, as StyleGAN-V computes FVD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class Gaussian:
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    count: int  # samples it was fitted to


def fit_gaussian(features: np.ndarray) -> Gaussian:
    """Mean and (unbiased, N-1) covariance of features [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {list(x.shape)}")
    return Gaussian(x.mean(axis=0), np.cov(x, rowvar=False), x.shape[0])


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """Fréchet distance between two Gaussians (see the module docstring)."""
    diff = a.mu - b.mu
    root = scipy.linalg.sqrtm(a.sigma @ b.sigma)
    root = np.real(root)
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.trace(root))
