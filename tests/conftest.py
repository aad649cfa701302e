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


DEMO_BUILD_ARGS: tuple[str, ...] = (
    "--demo",
    "--size",
    "320x180",
    "--min-size",
    "320x180",
    "--max-clips",
    "2",
    "--demo-port",
    "0",
    "--workers",
    "2",
    "--quiet",
)
"""Options of the `demo_corpus` build: the offline demo at a small size, 2 clips per source, two
of the nine good sources in the test split (demo_waterfall_burbling, demo_squishing_water)."""


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder built by the real `landscape-av build --demo` (yt-dlp over 127.0.0.1,
    ffmpeg, webdataset shards, manifests, card) with `DEMO_BUILD_ARGS`: 320x180 clips, 2 per source.
    Built once per test session; treat it as read-only."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo-corpus") / "landscape-av"
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    proc = subprocess.run(
        [*cmd, *DEMO_BUILD_ARGS, "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(f"demo build failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return out
