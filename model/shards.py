"""Shard patterns: the files that a `--shards` brace pattern or glob names. Light (no torch), so
that a command can check its shards before its heavy imports (`model.early_check`)."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import braceexpand


def expand_shards(shards: str | Path | Sequence[str | Path]) -> list[str]:
    """Shard paths of brace patterns (`data/train-{000000..000003}.tar`), globs, or lists of either.

    Raises FileNotFoundError naming the pattern when one matches nothing.
    """
    items = [shards] if isinstance(shards, str | Path) else list(shards)
    urls: list[str] = []
    for item in items:
        for pattern in braceexpand.braceexpand(str(item)):
            if glob.has_magic(pattern):
                found = sorted(glob.glob(pattern))
            else:
                found = [pattern] if Path(pattern).is_file() else []
            if not found:
                raise FileNotFoundError(f"no shard matches {pattern!r}")
            urls.extend(found)
    return urls
