"""A corpus in object storage: `--out` and the corpus readers take any fsspec URL as well as a folder.

`s3://bucket/prefix`, `gs://...`, `az://...`: anything fsspec has a filesystem for (the package of
that filesystem installed: `pip install 'landscape-av[s3]'` brings s3fs); `file://` URLs and plain
paths are local folders. Credentials and endpoints come only from each filesystem's own
environment (for S3: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE / ~/.aws,
AWS_ENDPOINT_URL for an S3-compatible server; for any protocol fsspec's FSSPEC_<PROTOCOL> JSON
or FSSPEC_<PROTOCOL>_<OPTION> variables), or from `storage_options` given in Python: never from a
command-line flag, so they never reach a log, a manifest, build.json or the card.

Publishing a corpus (`publish`, all or nothing in the object-store sense): the finished corpus is
uploaded to `.work/publish/` and a journal `.work/publish.json` listing its files is written; then
each file is copied into place (shards first, the card last), the old corpus's other files are
removed, and the journal deleted. A run that finds a journal (a kill during the copies) finishes
those copies first (`roll_forward`), so the corpus at the URL is the old one or, once the journal
is written, the new one, always with a way to finish. The build's use of it (its uploads as it
goes, its resume from the URL) is `landscape_av.pipeline.publish`'s.

A `Corpus` of a URL (`CorpusCopy`) reads through a local copy: its small files on opening, its
shards on first use, each fetched again only when its size or ETag at the URL changes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from landscape_av.files import atomic_write
from landscape_av.schema import BUILD_FILE, CARD_FILE, CORPUS_ENTRIES, DATA_DIR, WORK_DIR

JOURNAL = f"{WORK_DIR}/publish.json"
"""The publish journal at the URL: while it exists, the copies it lists are not all done."""
PUBLISH_DIR = f"{WORK_DIR}/publish"
"""Where the new corpus is uploaded before it is copied into place."""
INDEX_FILE = "fetched.json"
"""Beside a local copy of a corpus: size and ETag at the URL of each file fetched."""


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether `location` is a URL of a filesystem other than the local one."""
    protocol = urlsplit(str(location)).scheme if "://" in str(location) else ""
    return protocol not in ("", "file", "local")


def local_path(location: str | os.PathLike[str]) -> Path:
    """The folder of a local `location` (a path or a `file://` URL)."""
    text = str(location)
    return Path(urlsplit(text).path) if text.startswith(("file://", "local://")) else Path(text)


def cache_home() -> Path:
    """`$XDG_CACHE_HOME/landscape-av` (default `~/.cache/landscape-av`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landscape-av"


def _cache_dir(kind: str, url: str) -> Path:
    """`<cache_home>/<kind>/<hash of url>/<last part of url>`: one folder per URL."""
    url = url.rstrip("/")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_home() / kind / digest / (url.rsplit("/", 1)[-1] or "corpus")


def mirror_dir(url: str) -> Path:
    """The default local folder a build to `url` runs in (`--work-dir` picks another)."""
    return _cache_dir("builds", url)


class StorageError(OSError):
    """Reading or writing the URL failed (the message names the object, never a credential)."""


class Remote:
    """A corpus location given as an fsspec URL; paths below it are relative posix names."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except (ImportError, ValueError) as e:  # no filesystem of that protocol installed
            raise StorageError(f"{self.url}: {e}") from None
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"Remote({self.url!r})"

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    @contextmanager
    def errors(self, rel: str = "") -> Iterator[None]:
        """Any error of the filesystem in the block becomes a StorageError naming the object."""
        try:
            yield
        except StorageError:
            raise
        except Exception as e:  # s3fs, gcsfs... each raise their own
            where = f"{self.url}/{rel}" if rel else self.url
            raise StorageError(f"{where}: {type(e).__name__}: {e}") from None

    def files(self, rel: str = "") -> dict[str, dict[str, Any]]:
        """Every file under `rel` (name relative to the location -> fsspec info); {} where there
        is none."""
        with self.errors(rel):
            try:
                found = self.fs.find(self.path(rel), detail=True)
            except FileNotFoundError:
                return {}
        return {self.rel(p): info for p, info in found.items() if info.get("type") != "directory"}

    def top(self) -> list[str]:
        """Names of the entries at the top of the location ([] where it does not exist)."""
        with self.errors():
            try:
                return sorted(
                    p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)
                )
            except FileNotFoundError:
                return []

    def read(self, rel: str) -> bytes | None:
        """The bytes of `rel`, None where it does not exist."""
        with self.errors(rel):
            try:
                return self.fs.cat_file(self.path(rel))
            except FileNotFoundError:
                return None

    def write(self, rel: str, data: bytes) -> None:
        with self.errors(rel):
            self.fs.pipe_file(self.path(rel), data)

    def put(self, local: Path, rel: str) -> None:
        with self.errors(rel):
            self.fs.put_file(str(local), self.path(rel))

    def get(self, rel: str, local: Path) -> None:
        """Download `rel` to `local`, which appears whole or not at all."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.part")
        with self.errors(rel):
            self.fs.get_file(self.path(rel), str(tmp))
        os.replace(tmp, local)

    def copy(self, src: str, dst: str) -> None:
        with self.errors(dst):
            self.fs.copy(self.path(src), self.path(dst))

    def remove(self, rels: Iterable[str]) -> None:
        paths = [self.path(r) for r in rels]
        if paths:
            with self.errors():
                self.fs.rm(paths)

    def remove_tree(self, rel: str) -> None:
        """Remove every file under `rel`."""
        self.remove(self.files(rel))

    def is_file(self, rel: str) -> bool:
        with self.errors(rel):
            return bool(self.fs.isfile(self.path(rel)))


# --- publishing a corpus to a URL ---------------------------------------------------------------


def check_location(remote: Remote) -> str | None:
    """Why a build may not write to `remote` (it holds something that is not a corpus), or None."""
    if remote.is_file(""):
        return f"{remote.url} is a file, not a corpus location: use another --out"
    foreign = [name for name in remote.top() if name not in CORPUS_ENTRIES]
    if foreign:
        return (
            f"{remote.url} holds objects that are no part of a corpus ({', '.join(foreign[:3])}): "
            "a build replaces everything there, so use another (new or empty) --out"
        )
    return None


def roll_forward(remote: Remote, crash: Callable[[], None] = lambda: None) -> None:
    """Finish a publish that its journal says was begun: copy each file it lists from the
    staging prefix into place (the card last), remove the old corpus's other files, then the
    journal and the staging prefix. `crash()` runs after each copy (the tests' kill point)."""
    journal = remote.read(JOURNAL)
    if journal is None:
        return
    names = json.loads(journal)["files"]
    for rel in names:
        remote.copy(f"{PUBLISH_DIR}/{rel}", rel)
        crash()
    kept = set(names)
    old = [r for r in remote.files() if r.split("/", 1)[0] != WORK_DIR and r not in kept]
    remote.remove(old)
    remote.remove([JOURNAL])
    remote.remove_tree(PUBLISH_DIR)


def _publish_order(rel: str) -> tuple[bool, bool, bool, str]:
    """Shards first, build.json next to last, the card last (a reader that finds the new card
    finds everything it vouches for)."""
    return (rel == CARD_FILE, rel == BUILD_FILE, not rel.startswith(f"{DATA_DIR}/"), rel)


def publish(mirror: Path, remote: Remote, crash: Callable[[], None] = lambda: None) -> None:
    """Make the finished corpus in the local folder `mirror` the corpus at `remote`, all or
    nothing (see the module doc): upload to the staging prefix, write the journal, roll forward."""
    roll_forward(remote)
    remote.remove_tree(PUBLISH_DIR)
    names = sorted(
        (
            p.relative_to(mirror).as_posix()
            for p in mirror.rglob("*")
            if p.is_file() and p.relative_to(mirror).parts[0] != WORK_DIR
        ),
        key=_publish_order,
    )
    for rel in names:
        remote.put(mirror / rel, f"{PUBLISH_DIR}/{rel}")
    remote.write(JOURNAL, (json.dumps({"files": names}, indent=1) + "\n").encode())
    crash()
    roll_forward(remote, crash)


# --- reading a corpus at a URL ------------------------------------------------------------------


class CorpusCopy:
    """The local copy of the corpus at a URL: the small files (card, build.json, manifests,
    figures) are fetched on opening, shards by `fetch`; a file is fetched again when its
    size or ETag at the URL changed, and a local file the URL no longer has is removed."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.remote = Remote(url, storage_options)
        self.folder = _cache_dir("corpora", self.remote.url)
        listing = self.remote.files()
        if not listing:
            raise FileNotFoundError(f"{self.remote.url} holds no corpus (no object there)")
        self._listing = {r: i for r, i in listing.items() if r.split("/", 1)[0] != WORK_DIR}
        self._sync([r for r in self._listing if r.split("/", 1)[0] != DATA_DIR], data=False)

    def fetch(self, pattern: str) -> None:
        """Fetch the files of data/ whose relative name matches the glob `pattern`."""
        shards = [r for r in self._listing if r.split("/", 1)[0] == DATA_DIR]
        self._sync([r for r in shards if fnmatch.fnmatchcase(r, pattern)], data=True)

    def _sync(self, rels: list[str], data: bool) -> None:
        """Fetch `rels` where stale; remove the local files of data/ (`data`) or of the rest that
        the URL lacks."""
        index_path = self.folder.parent / INDEX_FILE
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            rel = path.relative_to(self.folder).as_posix()
            if (rel.split("/", 1)[0] == DATA_DIR) == data and rel not in self._listing:
                path.unlink()
                index.pop(rel, None)
        for rel in rels:
            info = self._listing[rel]
            stamp = [
                info.get("size"),
                str(info.get("ETag") or info.get("etag") or info.get("mtime")),
            ]
            if index.get(rel) != stamp or not (self.folder / rel).is_file():
                self.remote.get(rel, self.folder / rel)
                index[rel] = stamp
                atomic_write(index_path, json.dumps(index, indent=1, sort_keys=True))
