"""The bounded shard reader (`landscape_av.corpus.tar_reader`): it reads what tarfile reads, in
every format and compression the readers accepted before; shards that would cost tarfile
gigabytes or minutes are refused in one line, quickly, in bounded memory."""

from __future__ import annotations

import ast
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from landscape_av.corpus.tar_reader import ShardUnreadable, read_entries, read_samples

NAMES = ["a_00.json", "a_00.mp4", "b_00.flac", "é_00.txt", "k" * 150 + ".json", "d/e.bin"]
SIZES = [0, 1, 511, 512, 513, 5000]


def _reference_tar(path: Path, fmt: int, mode: str) -> Path:
    with tarfile.open(path, mode, format=fmt) as tar:
        folder = tarfile.TarInfo("d")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        link = tarfile.TarInfo("link.json")
        link.type, link.linkname = tarfile.SYMTYPE, "a_00.json"
        tar.addfile(link)
        for i, name in enumerate(NAMES):
            if fmt == tarfile.USTAR_FORMAT and (len(name) > 100 or not name.isascii()):
                continue  # ustar holds neither
            data = bytes([i]) * SIZES[i % len(SIZES)]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if fmt == tarfile.PAX_FORMAT and i == 1:
                info.pax_headers = {"comment": "x" * 300}  # a PAX header of another key
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
@pytest.mark.parametrize(
    "fmt",
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
    ids=["ustar", "gnu", "pax"],
)
def test_entries_and_data_are_what_tarfile_reads(tmp_path: Path, fmt: int, mode: str) -> None:
    path = _reference_tar(tmp_path / "s.tar", fmt, mode)
    with tarfile.open(path) as tar:
        expected = [
            (m.name, m.size if m.isreg() else 0, m.isreg(), tar.extractfile(m).read() if m.isreg() else None)
            for m in tar
        ]  # fmt: skip
    got = [
        (e.name, e.size, e.is_file, read() if e.is_file else None) for e, read in read_entries(path)
    ]
    assert got == expected
    assert len(got) >= 6


def test_samples_skip_unread_what_they_refuse(tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    members = [("a_00.json", b"1"), ("a_00.json", b"2"), ("../x.json", b"3"), ("b_00.mp4", b"4")]
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    refused: list[tuple[str, str, str]] = []
    got = list(read_samples(path, refused=lambda *r: refused.append(r)))
    assert got == [("a_00", {"json": b"1"}), ("b_00", {"mp4": b"4"})]
    assert [r[:2] for r in refused] == [("a_00", "a_00.json"), ("a_00", "../x.json")]
    assert list(read_samples(path, members=("mp4",))) == [("a_00", {}), ("b_00", {"mp4": b"4"})]


def test_a_damaged_shard_says_where(tmp_path: Path) -> None:
    path = _reference_tar(tmp_path / "s.tar", tarfile.GNU_FORMAT, "w")
    data = bytearray(path.read_bytes())
    data[512 * 3 + 148] ^= 0xFF  # a checksum digit of the third header
    path.write_bytes(bytes(data))
    with pytest.raises(ShardUnreadable, match="not a tar header at byte 1,536 .bad checksum."):
        list(read_entries(path))
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(ShardUnreadable, match="empty file"):
        list(read_entries(tmp_path / "empty.tar"))


READ = """
from pathlib import Path
from landscape_av.corpus.corpus import read_shard, shard_keys
def read(path):
    problems = []
    keys = [s.key for s in read_shard(Path(path), report=lambda *p: problems.append(p))]
    try:
        shard_keys(Path(path))
    except ValueError as e:
        counted = str(e)
    return keys, problems, counted
"""


@pytest.mark.slow
def test_hostile_shards_are_refused_quickly_in_bounded_memory(hostile_shards, guarded) -> None:
    results, _, _ = guarded(READ, "read(arg)", [str(p) for p in hostile_shards], limit=200 << 20)
    for r in results:
        name, message = hostile_shards[Path(r["arg"])]
        assert r["error"] is None, (name, r["error"])
        keys, problems, counted = ast.literal_eval(r["value"])
        assert len(problems) <= 101 and message in problems[-1][2], (name, problems[-3:])
        assert counted.startswith(r["arg"]) and message in counted, (name, counted)
        assert r["seconds"] < 5 and r["grew"] < 100 << 20, (name, r)


VERIFY = """
from landscape_av.corpus.verify import verify_corpus
def verify(folder):
    return [str(p) for p in verify_corpus(folder, decode=False)]
"""


@pytest.mark.slow
def test_verify_names_a_hostile_shard_in_one_line(
    corpus_copy: Path, hostile_shards, guarded
) -> None:
    corpora = {}
    for i, (path, (name, message)) in enumerate(hostile_shards.items()):
        folder = corpus_copy.parent / f"copy-{i}" / corpus_copy.name
        shutil.copytree(corpus_copy, folder)
        shard = folder / "data" / "train-000000.tar"
        shard.unlink()
        os.link(path, shard)  # a regular file of the corpus (the 600 MB ones stay holes)
        corpora[str(folder)] = (name, message)
    results, _, _ = guarded(VERIFY, "verify(arg)", list(corpora), limit=200 << 20)
    for r in results:
        name, message = corpora[r["arg"]]
        assert r["error"] is None, (name, r["error"])
        lines = [line for line in ast.literal_eval(r["value"]) if message in line]
        assert len(lines) == 1 and lines[0].startswith("train-000000.tar"), (name, r["value"])
        assert r["seconds"] < 10 and r["grew"] < 100 << 20, (name, r)
