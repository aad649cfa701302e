"""Shards (reproducible tars read back by webdataset), split assignment, output manifests."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import webdataset as wds

from landscape_av.corpus.manifests import read_manifest_table, write_manifest
from landscape_av.pipeline.shard import SampleFiles, plan_shards, write_shard
from landscape_av.schema import manifest_columns
from landscape_av.sources.source_list import Source
from landscape_av.sources.split import assign_splits, hashed_split


def samples(tmp_path: Path, n: int, split: str = "train", size: int = 1000) -> list[SampleFiles]:
    out = []
    for i in range(n):
        key = f"src{i}_00"
        members = {}
        for ext in ("mp4", "json"):
            path = tmp_path / f"{key}.{ext}"
            path.write_bytes(bytes([i % 256]) * size if ext == "mp4" else b'{"i": %d}' % i)
            members[ext] = path
        out.append(SampleFiles(key, split, members))
    return out


def test_shards_are_bounded_and_per_split(tmp_path: Path):
    items = samples(tmp_path, 7) + [
        SampleFiles(s.key.replace("src", "tst"), "test", s.members) for s in samples(tmp_path, 2)
    ]
    by_count = plan_shards(items, max_bytes=10**9, max_samples=3)
    assert [(p.name, len(p.samples)) for p in by_count] == [
        ("train-000000.tar", 3),
        ("train-000001.tar", 3),
        ("train-000002.tar", 1),
        ("test-000000.tar", 2),
    ]
    # a sample takes 512 + 1024 (mp4) + 512 + 512 (json) bytes; a tar adds 1024 and is padded to
    # 10240-byte records: three samples fit in 10240 bytes, four do not
    by_size = plan_shards(items[:7], max_bytes=10240, max_samples=100)
    assert [len(p.samples) for p in by_size] == [3, 3, 1]
    for plan in by_size:
        size, _ = write_shard(plan, tmp_path / plan.name)
        assert size == 10240


def test_shard_bytes_are_reproducible_and_readable(tmp_path: Path):
    plan = plan_shards(samples(tmp_path, 3), 10**9, 10)[0]
    size_a, sha_a = write_shard(plan, tmp_path / "a.tar")
    for s in plan.samples:  # touching the files must not change the tar
        for p in s.members.values():
            p.touch()
    size_b, sha_b = write_shard(plan, tmp_path / "b.tar")
    assert (size_a, sha_a) == (size_b, sha_b)
    with tarfile.open(tmp_path / "a.tar") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [
        f"src{i}_00.{ext}" for i in range(3) for ext in ("json", "mp4")
    ]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
        (0, 0, 0, "", "", 0o644)
    }
    read = list(wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False))
    assert [r["__key__"] for r in read] == ["src0_00", "src1_00", "src2_00"]
    assert read[1]["mp4"] == bytes([1]) * 1000


def src(source_id: str, split: str | None = None) -> Source:
    return Source(
        source_id, f"http://x/{source_id}", "raining", split=split, source_list="m", line=2
    )


def test_split_keeps_manifest_split_and_hashes_the_rest():
    sources = [src("a", "train"), src("b", "test")] + [src(f"s{i}") for i in range(2000)]
    splits = assign_splits(sources, test_fraction=0.2)
    assert splits["a"] == "train" and splits["b"] == "test"
    share = sum(splits[f"s{i}"] == "test" for i in range(2000)) / 2000
    assert 0.17 < share < 0.23
    assert splits == assign_splits(list(reversed(sources)), test_fraction=0.2)
    assert hashed_split("s1", 0.0) == "train" and hashed_split("s1", 1.0) == "test"


def test_source_in_both_splits_goes_to_test_only():
    splits = assign_splits([src("dup", "train"), src("dup", "test"), src("one", "train")])
    assert splits == {"dup": "test", "one": "train"}
    with pytest.raises(ValueError, match="m:2: split 'val'"):
        assign_splits([src("bad", "val")])


def failure_row(i: int) -> dict:
    return {
        "source_id": f"s{i}",
        "url": "http://x",
        "class": "raining",
        "stage": "filter",
        "reason": "silent",
        "detail": "RMS -inf dBFS",
    }


def test_manifests_round_trip_in_both_formats(tmp_path: Path):
    rows = [failure_row(i) for i in range(3)]
    write_manifest(tmp_path, "failures", rows)
    table = read_manifest_table(tmp_path, "failures")
    assert list(table.columns) == list(manifest_columns("failures"))
    assert table.to_dict("records") == rows
    with open(tmp_path / "manifests" / "failures.csv", newline="") as f:
        assert list(csv.DictReader(f)) == rows
    first = (tmp_path / "manifests" / "failures.parquet").read_bytes()
    write_manifest(tmp_path, "failures", rows)
    assert (tmp_path / "manifests" / "failures.parquet").read_bytes() == first
    assert not list((tmp_path / "manifests").glob(".*tmp"))


def test_manifest_rows_must_match_columns(tmp_path: Path):
    bad = failure_row(0) | {"extra": 1}
    with pytest.raises(
        ValueError, match=r"failures manifest row 0: unexpected columns \['extra'\]"
    ):
        write_manifest(tmp_path, "failures", [bad])
    with pytest.raises(FileNotFoundError, match="clips.parquet is missing"):
        read_manifest_table(tmp_path, "clips")
    empty = tmp_path / "empty"
    write_manifest(empty, "clips", [])
    assert read_manifest_table(empty, "clips").shape == (0, len(manifest_columns("clips")))
    assert isinstance(read_manifest_table(empty, "clips"), pd.DataFrame)
