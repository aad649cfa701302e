"""Kill -9 a real `landscape-av build` at several points, rerun it, and get the same bytes as an
uninterrupted build; rerunning a finished build redoes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from landscape_av.pipeline.crash import CRASH_ENV
from landscape_av.pipeline.swap import staging_dir

from .conftest import snapshot, write_media_list

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]
OPTIONS += ["--shard-samples", "1", "--quiet"]  # one sample per shard: several shards to crash in
ROWS = [
    ("good", "good.mp4", "raining", "train"),
    ("rotated", "rotated.mp4", "wind noise", "test"),
    ("silent", "silent.mp4", "squishing water", ""),
    ("good2", "good2.mp4", "fire crackling", ""),
    ("missing", "missing.mp4", "splashing water", ""),
    ("damaged", "damaged.mp4", "thunderstorm", ""),  # fails alike in every run, resumed or not
    ("novideo", "novideo.mp4", "volcano eruption", ""),  # rejected, committed
]


def run_build(source_list: Path, out: Path, crash_at: str | None = None) -> int:
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    cmd += ["--source-list", str(source_list), "--out", str(out), *OPTIONS]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if crash_at is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "sources.csv"
    return write_media_list(path, [(i, f"{media_server}{f}", c, s) for i, f, c, s in ROWS])


@pytest.mark.slow
def test_kill_and_resume_gives_identical_output(source_list: Path, tmp_path: Path):
    reference = tmp_path / "reference"
    run_build(source_list, reference)
    expected = snapshot(reference)
    assert sum(name.startswith("data/") for name in expected) == 4  # 4 clips, one per shard

    out = tmp_path / "resumed"
    samples = out / ".work" / "samples"
    # 1: killed right after the first download
    assert run_build(source_list, out, "download:1") == -9
    assert not samples.exists() or not [p for p in samples.iterdir() if p.is_dir()]
    # 2: killed mid-clipping, two sources committed (the first reused from run 1's download)
    assert run_build(source_list, out, "clip:2") == -9
    committed = [p.name for p in samples.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(committed) == 2 and not (out / "data").exists()
    # 3: killed mid-sharding: two of the four shards written beside OUT, which is untouched
    assert run_build(source_list, out, "shard:2") == -9
    assert len(list((staging_dir(out) / "data").glob("*.tar"))) == 2
    assert not (out / "data").exists() and not (out / "manifests").exists()
    # 4: runs to the end
    run_build(source_list, out)
    assert snapshot(out) == expected
    # a finished build run again changes nothing, and rewrites no shard
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    run_build(source_list, out)
    assert snapshot(out) == expected
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == mtimes
