"""`landscape-av build --engine ray` on a real Ray cluster on 127.0.0.1: the same bytes as a local
build when a worker process is killed mid-clip, when the driver is interrupted and a local build
finishes the job, and when a Ray build finishes what a killed local build began (the cluster:
`ray_cluster` of conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from landscape_av.pipeline.crash import CRASH_ENV
from landscape_av.pipeline.engines.ray import SCRATCH, _Slot
from landscape_av.pipeline.exits import EXIT_INTERRUPTED

from .conftest import LOOPBACK_ENV, Cluster, snapshot, write_media_list

pytest.importorskip("ray")

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]
OPTIONS += ["--shard-samples", "1", "--quiet"]
ROWS = [
    ("good", "good.mp4", "raining", "train"),
    ("rotated", "rotated.mp4", "wind noise", "test"),
    ("silent", "silent.mp4", "squishing water", ""),
    ("missing", "missing.mp4", "splashing water", ""),
]


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-sources") / "sources.csv"
    return write_media_list(path, [(i, f"{media_server}{f}", c, s) for i, f, c, s in ROWS])


def build_cmd(source_list: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    return [*cmd, "--source-list", str(source_list), "--out", str(out), *OPTIONS, *extra]


def run_build(cmd: list[str], crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | LOOPBACK_ENV
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(source_list: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The corpus of a local build of the source list."""
    out = tmp_path_factory.mktemp("ray-reference") / "corpus"
    proc = run_build(build_cmd(source_list, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = snapshot(out)
    assert sum(name.startswith("data/") for name in files) == 3  # good x2, rotated
    assert b"missing" in files["manifests/failures.csv"]
    return files


def _clipping_worker(cluster_pids: set[int]) -> int | None:
    """The Ray worker process (of the cluster) whose ffmpeg child encodes clips, if any."""
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if not proc.name.isdigit() or b"libx264" not in args:
                continue
            if not any(SCRATCH.encode() in a for a in args):
                continue
            parent = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent in cluster_pids:
            return parent
    return None


@pytest.mark.slow
def test_worker_killed_mid_clip_is_retried_and_output_identical(
    ray_cluster: Cluster, source_list: Path, reference: dict[str, bytes], tmp_path: Path
):
    out = tmp_path / "ray"
    cmd = build_cmd(source_list, out, "--engine", "ray", "--ray-address", ray_cluster.address)
    driver = subprocess.Popen(
        cmd, env=os.environ | LOOPBACK_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and driver.poll() is None and time.monotonic() < deadline:
        killed = _clipping_worker(ray_cluster.pids())
        if killed is None:
            time.sleep(0.02)
        else:
            os.kill(killed, signal.SIGKILL)
    _, stderr = driver.communicate(timeout=600)
    assert killed is not None, "no worker was seen clipping"
    assert driver.returncode == 0, stderr.decode()[-3000:]
    assert snapshot(out) == reference
    log = (out / ".work" / "build.log").read_text()
    assert "ray: 4 of 4 sources ran as tasks" in log


def _committed(out: Path) -> int:
    samples = out / ".work" / "samples"
    if not samples.is_dir():
        return 0
    return sum(p.is_dir() and not p.name.startswith(".") for p in samples.iterdir())


@pytest.mark.slow
def test_killed_ray_driver_resumes_locally(
    ray_cluster: Cluster, source_list: Path, reference: dict[str, bytes], tmp_path: Path
):
    out = tmp_path / "resumed"
    cmd = build_cmd(source_list, out, "--engine", "ray", "--ray-address", ray_cluster.address)
    assert run_build(cmd, crash_at="clip:1").returncode == -9  # SIGKILL after one commit
    assert _committed(out) == 1 and not (out / "data").exists()
    proc = run_build(build_cmd(source_list, out))  # --engine local
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snapshot(out) == reference


@pytest.mark.slow
def test_ray_build_resumes_a_killed_local_build_and_stops_on_ctrl_c(
    ray_cluster: Cluster, source_list: Path, reference: dict[str, bytes], tmp_path: Path
):
    out = tmp_path / "finished"
    assert run_build(build_cmd(source_list, out), crash_at="clip:1").returncode == -9
    cmd = build_cmd(source_list, out, "--engine", "ray", "--ray-address", ray_cluster.address)
    driver = subprocess.Popen(
        cmd, env=os.environ | LOOPBACK_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while driver.poll() is None and _committed(out) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert driver.poll() is None, "the build ended before a second source was committed"
    driver.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == EXIT_INTERRUPTED, stderr.decode()[-3000:]
    assert time.monotonic() - start < 20
    time.sleep(1)  # its tasks were cancelled: no worker goes on clipping
    assert _clipping_worker(ray_cluster.pids()) is None
    committed = _committed(out)
    proc = run_build(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snapshot(out) == reference
    # the committed sources were reused, not run again
    log = (out / ".work" / "build.log").read_text()
    assert f"ray: {4 - committed} of 4 sources ran as tasks" in log


SLOT_CHILD = """
import sys, time
from landscape_av.pipeline.engines.ray import _Slot
with _Slot(1):
    print("held", flush=True)
    time.sleep(60)
"""


def test_download_slot_of_a_killed_process_is_taken_back(tmp_path: Path, monkeypatch):
    """`--downloads 1`: a second download waits while a worker holds the node's slot, and goes
    on as soon as that worker is killed (SIGKILL) holding it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c", SLOT_CHILD],
        env=os.environ | {"TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with _Slot(1):
                got.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        assert not got.wait(1.0)
        holder.kill()
        assert got.wait(5.0)
    finally:
        holder.kill()
        holder.wait()
