"""Inception Score: exp(E_x KL(p(y|x) || p(y))), averaged over splits (Salimans et al. 2016).

Frame-level with Inception-v3 and video-level with C3D (the TGAN / StyleGAN-V protocol) alike: the
samples are shuffled with a fixed RandomState(42), cut into `splits` contiguous parts
(`i*N//splits : (i+1)*N//splits`), p(y) is each part's mean, and the score is the mean (and standard
deviation) over parts.
"""

from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score of class probabilities [N, C] (rows sum to 1)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < splits:
        raise ValueError(f"need probabilities [N >= {splits}, C], got shape {list(p.shape)}")
    p = p[np.random.RandomState(42).permutation(p.shape[0])]
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(np.clip(part, 1e-30, None)) - np.log(np.clip(marginal, 1e-30, None)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
