"""Fixtures of the corpus tests: a writable copy of the demo corpus, a cache folder for `datasets`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landscape_av.corpus import Corpus
from landscape_av.schema import SPLITS


@pytest.fixture
def corpus_copy(demo_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the session's demo corpus, named like the original, free to damage."""
    dest = tmp_path / demo_corpus.name
    shutil.copytree(demo_corpus, dest, ignore=shutil.ignore_patterns(".work"))
    return dest


@pytest.fixture(scope="session")
def manifests(demo_corpus: Path) -> dict:
    """The demo corpus's four manifests (DataFrames by name)."""
    return Corpus(demo_corpus).manifests()


@pytest.fixture
def hf_cache(tmp_path: Path) -> str:
    """A private `datasets` cache, so tests neither read nor fill the user's."""
    return str(tmp_path / "hf-cache")


@pytest.fixture(scope="session")
def splits(manifests) -> list[str]:
    """The splits of the demo corpus that have shards (a small build may leave `test` empty)."""
    return [s for s in SPLITS if (manifests["shards"]["split"] == s).any()]
