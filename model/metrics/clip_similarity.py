"""CLIP similarity of a video to a text or a sound (the seed paper, sec. 4.3, Table 3a).

The video's embedding is the mean of the CLIP image embeddings of its frames; the score of a video
is its cosine similarity with the target embedding (the class prompt's CLIP text embedding, or the
sound encoder's embedding of the clip's audio), and the metric is the mean over videos.
"""

from __future__ import annotations

import numpy as np


def video_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """Mean of per-frame embeddings: [..., T, D] -> [..., D]."""
    return np.asarray(frame_embeddings, dtype=np.float64).mean(axis=-2)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of [N, D] and [N, D] -> [N]."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def clip_similarity(video_embeddings: np.ndarray, targets: np.ndarray) -> float:
    """Mean cosine similarity of video embeddings [N, D] with their targets [N, D]."""
    return float(cosine(video_embeddings, targets).mean())
