"""`landscape-av build --engine ray` on a real Ray cluster on 127.0.0.1: the same bytes as a local
build when a worker process is killed mid-clip, when the driver is interrupted and a local build
finishes the job, and when a Ray build finishes what a killed local build began.

The cluster is one `ray start --head` node with 2 CPUs (a second node would only slow this 2-core
machine down); `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` makes Ray take 127.0.0.1 as the node address,
so that it listens on loopback only. Every process of the cluster carries a marker in its
environment, by which the finalizer ends exactly those."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from landscape_av.pipeline.build import CRASH_ENV, EXIT_INTERRUPTED
from landscape_av.pipeline.ray_engine import SCRATCH, _Slot

pytest.importorskip("ray")

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]
OPTIONS += ["--shard-samples", "1", "--quiet"]
ROWS = [
    ("good", "good.mp4", "raining", "train"),
    ("rotated", "rotated.mp4", "wind noise", "test"),
    ("silent", "silent.mp4", "squishing water", ""),
    ("missing", "missing.mp4", "splashing water", ""),
]
MARKER = "LANDSCAPE_AV_TEST_RAY"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
"""127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked(tag: str) -> list[int]:
    """Ids of the processes whose environment carries the marker `tag`."""
    needle = f"{MARKER}={tag}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets listening in the processes `pids`."""
    inodes = set()
    for pid in pids:
        with_fd = Path(f"/proc/{pid}/fd")
        try:
            for fd in with_fd.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(fields[1].rsplit(":", 1)[0])
    return found


@dataclass(frozen=True)
class Cluster:
    address: str
    tag: str  # the marker's value in its processes' environment

    def pids(self) -> set[int]:
        return set(_marked(self.tag))


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node Ray cluster (2 CPUs) on 127.0.0.1; every process of it is ended afterwards."""
    temp = tmp_path_factory.mktemp("ray")
    port = _free_port()
    env = os.environ | LOOPBACK_ENV | {MARKER: str(temp)}
    cmd = ["ray", "start", "--head", "--port", str(port), "--num-cpus", "2"]
    cmd += ["--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Cluster(f"127.0.0.1:{port}", str(temp))
        # every socket the cluster listens on is a loopback one
        assert _listening_addresses(_marked(str(temp))) <= LOOPBACK
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked(str(temp)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(2)
        assert not _marked(str(temp))


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-sources") / "sources.csv"
    lines = ["source_id,url,class,start,end,split,license,attribution"]
    lines += [f"{i},{media_server}{f},{c},,,{s},CC0-1.0,test media" for i, f, c, s in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


def build_cmd(source_list: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    return [*cmd, "--source-list", str(source_list), "--out", str(out), *OPTIONS, *extra]


def run_build(cmd: list[str], crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | LOOPBACK_ENV
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the corpus except the resumable work folder."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }


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
from landscape_av.pipeline.ray_engine import _Slot
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
