"""Whole-file helpers: the sha256 of a file, writing a file so that it appears complete or not at
all, and reading a small input file without trusting what it is (`read_bounded_text`)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside `path` to write to; on a clean exit it is synced and renamed
    to `path` (mode 0644), on an exception removed. The name is hidden and unique
    (`.<name>.<random><suffix>`), so concurrent writers and readers globbing the folder never meet
    a half-written file; give a `suffix` with the extension when a writer infers the format."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


class RefusedFile(ValueError):
    """An input file that is not read: not a regular file, or larger than its bound."""


def read_bounded_text(path: Path, limit: int, what: str = "file") -> str:
    """The text (UTF-8, a BOM dropped) of the regular file `path`, read without blocking on a FIFO
    and never more than `limit` bytes; raises RefusedFile for a FIFO, device, socket or folder
    (`/dev/zero` would read forever) or a file over `limit` bytes, OSError where it cannot be
    opened and UnicodeDecodeError for bytes that are not UTF-8."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens at once
    with open(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
            raise RefusedFile(f"is {kind}, not a regular file: a {what} must be one")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RefusedFile(f"is larger than {limit / 2**20:g} MiB: too large for a {what}")
    return data.decode("utf-8-sig")
