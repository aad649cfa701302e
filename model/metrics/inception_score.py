"""Inception Score: exp(E_x KL(p(y|x) || p(y))), averaged over splits (Salimans et al. 2016).

As NVIDIA's stylegan3 `metrics/inception_score.py` and StyleGAN-V's `video_inception_score.py`
compute it: class probabilities rounded to float32 (their `FeatureStats` stores them so; the
arithmetic here is float64, so that denormal probabilities cannot overflow), cut into `splits`
contiguous parts `i*N//splits : (i+1)*N//splits`, p(y) each part's mean, and the mean and standard
deviation of exp(mean KL) over parts. NVIDIA's frame IS keeps the samples in their order;
StyleGAN-V's video IS first shuffles them with `np.random.RandomState(42)` (`shuffle=True`). A
probability of exactly 0 adds 0 (the limit of p log p), where the references' log(0) gives NaN.
"""

from __future__ import annotations

import numpy as np


def inception_score(
    probs: np.ndarray, splits: int = 10, shuffle: bool = False
) -> tuple[float, float]:
    """(mean, std) of the Inception Score of class probabilities [N, C] (rows sum to 1)."""
    p = np.array(probs, dtype=np.float32).astype(np.float64)
    if p.ndim != 2 or p.shape[0] < splits:
        raise ValueError(f"need probabilities [N >= {splits}, C], got shape {list(p.shape)}")
    if shuffle:
        np.random.RandomState(42).shuffle(p)
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = np.mean(part, axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
