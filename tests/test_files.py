"""`atomic_write` / `atomic_path`: a file appears complete or not at all, and no temporary is left."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from landscape_av.files import atomic_path, atomic_write, file_sha256


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "card.md"
    atomic_write(path, "old")
    atomic_write(path, "néw")
    assert path.read_text(encoding="utf-8") == "néw"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]
    assert file_sha256(path) == hashlib.sha256("néw".encode()).hexdigest()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "shard.tar"
    atomic_write(path, b"complete")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.tar"]


def test_temporaries_are_hidden_unique_and_keep_a_given_suffix(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with atomic_path(path, suffix=".part.mp4") as a, atomic_path(path, suffix=".part.mp4") as b:
        assert a != b and a.parent == tmp_path
        assert a.name.startswith(".clip.mp4.") and a.name.endswith(".part.mp4")
        assert not list(tmp_path.glob("[!.]*"))  # nothing visible until the rename
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert path.read_bytes() == b"a"  # the last to finish wins, whole
