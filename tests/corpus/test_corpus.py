"""`Corpus(folder)`: paths, manifests read once, shards per split, samples from a checked tar reader."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from landscape_av.corpus import Corpus, read_shard
from landscape_av.corpus.corpus import shard_keys
from landscape_av.schema import MEMBERS, SPLITS, member_problem, split_member


def _tar(path: Path, members: list[tuple[str, bytes]], folder: str | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        if folder:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_samples_follow_the_clips_manifest(demo_corpus: Path, manifests) -> None:
    corpus = Corpus(demo_corpus)
    clips = manifests["clips"]
    for split in SPLITS:
        shards = corpus.shards(split)
        assert [p.name for p in shards] == sorted(
            clips.loc[clips["split"] == split, "shard"].unique()
        )
        samples = list(corpus.samples(split))
        assert [s.key for s in samples] == list(clips.loc[clips["split"] == split, "key"])
        assert all(sorted(s.members) == sorted(MEMBERS) for s in samples)
        assert all(s.meta()["key"] == s.key for s in samples)
        assert sum(len(shard_keys(p)) for p in shards) == len(samples)
    only_json = next(corpus.samples("train", members=("json",)))
    assert list(only_json.members) == ["json"]
    assert sorted(corpus.shards()) == sorted(corpus.shards("train") + corpus.shards("test"))


def test_each_manifest_is_read_once(corpus_copy: Path) -> None:
    corpus = Corpus(corpus_copy)
    clips = corpus.manifest("clips")
    corpus.manifest_path("clips").unlink()
    assert corpus.manifest("clips") is clips  # served from the first read
    assert Corpus.of(corpus) is corpus
    with pytest.raises(FileNotFoundError, match="clips.parquet"):
        Corpus(corpus_copy).manifest("clips")


def test_member_names_split_at_the_first_dot() -> None:
    assert split_member("abc_00.mp4") == ("abc_00", "mp4")
    assert split_member("abc_00.frames.npy") == ("abc_00", "frames.npy")
    assert split_member("README") == ("README", "")


def test_bad_entries_are_reported_or_raised(tmp_path: Path) -> None:
    shard = _tar(
        tmp_path / "train-000000.tar",
        [("a.json", b"1"), ("a.mp4", b"2"), ("x/b.json", b"3"), ("b.json", b"4"), ("b.json", b"5")],
        folder="x",
    )
    problems: list[tuple[str, str, str]] = []
    samples = list(read_shard(shard, report=lambda *p: problems.append(p)))
    assert [(s.key, s.members) for s in samples] == [
        ("a", {"json": b"1", "mp4": b"2"}),
        ("b", {"json": b"4"}),  # the first copy, the second unread
    ]
    assert problems == [
        ("-", "-", "unexpected tar entry 'x': not a file"),
        ("a", "-", f"unexpected tar entry 'x/b.json': {member_problem('x/b.json', 1)}"),
        ("b", "-", "unexpected tar entry 'b.json': appears twice in its sample"),
    ]
    with pytest.raises(
        ValueError, match=r"^train-000000.tar: unexpected tar entry 'x': not a file$"
    ):
        list(read_shard(shard))


def test_a_cut_tar_drops_the_sample_it_cut(tmp_path: Path) -> None:
    shard = _tar(tmp_path / "s.tar", [("a.json", b"1" * 600), ("b.json", b"2" * 600)])
    data = shard.read_bytes()
    shard.write_bytes(data[: 512 * 4 + 100])  # a's header and data, b's header, part of b's data
    problems: list[tuple[str, str, str]] = []
    samples = list(read_shard(shard, report=lambda *p: problems.append(p)))
    assert [s.key for s in samples] == ["a"]
    assert [(k, m) for k, m, _ in problems] == [("b", "-")]
    assert problems[0][2].startswith("tar unreadable after this point")
    with pytest.raises(ValueError, match=r"^s.tar/b: tar unreadable"):
        list(read_shard(shard))
