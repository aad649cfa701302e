"""Train/test assignment by source video, so that no source has clips in both splits.

A split given by the source list (VGGSound's, for the Landscape list) is kept; a source without one
goes by a salted hash of its id, so the assignment is stable across runs and machines and does not
depend on which other sources are in the build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from landscape_av.near_miss import did_you_mean
from landscape_av.schema import SPLITS
from landscape_av.sources.source_list import Source


def hashed_split(source_id: str, test_fraction: float, salt: str = "") -> str:
    """'test' for about `test_fraction` of source ids (deterministic), else 'train'."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test fraction must be within [0, 1], got {test_fraction}")
    digest = hashlib.sha256(f"{salt}{source_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def assign_splits(
    sources: Iterable[Source], test_fraction: float = 0.1, salt: str = ""
) -> dict[str, str]:
    """source_id -> split. A source that the source list has in both splits goes to 'test' (so the
    test set never shares a video with the training set); one without a split is hashed."""
    given: dict[str, set[str]] = {}
    for source in sources:
        bucket = given.setdefault(source.source_id, set())
        if source.split is not None:
            if source.split not in SPLITS:
                raise ValueError(
                    f"{source.source_list}:{source.line}: split {source.split!r} is not one of "
                    f"{SPLITS}{did_you_mean(source.split, SPLITS)}"
                )
            bucket.add(source.split)
    return {
        source_id: (
            "test"
            if "test" in splits
            else "train"
            if splits
            else hashed_split(source_id, test_fraction, salt)
        )
        for source_id, splits in given.items()
    }
