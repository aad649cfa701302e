"""Fixtures shared by all test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("LANDSCAPE_AV_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repo (fixtures, real media, notes); skips where it is absent."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"{path} is absent (it sits beside the repo in CI; a user's clone lacks it)")
    return path


@pytest.fixture(scope="session")
def shared_media(shared_dir: Path) -> Path:
    """`../shared/media`: real third-party audio and video (see its README and SOURCES.tsv)."""
    return shared_dir / "media"
