"""Fixtures of the corpus tests: a writable copy of the demo corpus, a cache folder for `datasets`,
the viewer served on 127.0.0.1 and an HTTP client for it."""

from __future__ import annotations

import http.client
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

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


@contextmanager
def serve_view(folder: Path | str) -> Iterator:
    """`landscape-av view`'s server of the corpus at `folder` on a free port of 127.0.0.1, in a
    thread, stopped afterwards; yields the `ViewServer` (its `url`, its `view`)."""
    from landscape_av.corpus.view import CorpusView
    from landscape_av.corpus.view_server import ViewServer

    server = ViewServer(CorpusView(Corpus(folder), warn=lambda line: None), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def http_get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to `url` (on 127.0.0.1), whatever the status."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
