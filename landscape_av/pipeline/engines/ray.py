"""The Ray engine (`--engine ray`): each source's stages (`source_stages.process`) run as one Ray
task, anywhere on the cluster.

A worker shares no disk with the driver: the task works in a scratch folder of its own node and
returns the outcome with the committed sample files (bytes, through Ray's object store); the driver
commits them into OUT/.work through the `Board`, as the local engine does, so sharding, manifests
and card, which stay on the driver, come out byte-identical to a local build. A source whose
worker process or node dies is retried by Ray (`TASK_RETRIES`), then recorded as failed at the
stage it had reached.

The tasks report to one actor, `_Hub`, which takes the progress events of the stages and keeps
the network watch of the local engine (`network.NetworkWatch`). A node's concurrent downloads are
bounded to `--downloads` by as many lock files in its temp folder (`_Slot`): the kernel releases
the lock of a worker process that dies holding it, and waiting on one makes no Ray call (a task
blocked in `ray.get` lends its CPU to the next task, which would run more encoders than CPUs).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape_av.files import atomic_write
from landscape_av.pipeline.build_log import captured_log
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.download import PARTIAL_DIR
from landscape_av.pipeline.engines.interface import Board, Job
from landscape_av.pipeline.exits import BuildStopped
from landscape_av.pipeline.network import NetworkWatch
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.sample_store import SOURCE_RECORD, SampleStore
from landscape_av.pipeline.source_stages import DOWNLOADS_DIR, STAGES, process
from landscape_av.sources.source_list import Source

TASK_RETRIES = 3
"""Times Ray reruns a source whose worker process or node died."""
NAMESPACE = "landscape-av"
SCRATCH = "landscape-av-ray"
"""Folder in each node's temp folder holding the tasks' scratch folders (`<pid>-*`)."""
_WAIT = 0.5  # s between looks at finished tasks and progress events (and Ctrl-C)
log = logging.getLogger(__name__)


@dataclass
class _Result:
    """What a task hands back: the outcome; whether it was committed, with the committed files
    (name -> bytes, the source record aside); the damaged-download record it leaves (bytes, or
    None); downloads to keep (name -> bytes); its log lines (logger, level, message); its node."""

    outcome: Outcome
    committed: bool
    files: dict[str, bytes] = field(default_factory=dict)
    damaged: bytes | None = None
    downloads: dict[str, bytes] = field(default_factory=dict)
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    node: str = ""


class RayEngine:
    """`interface.Engine` as Ray tasks on the cluster of `config.ray_address`."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config

    def run(self, jobs: Sequence[Job], board: Board) -> Iterator[Outcome]:
        """Run each job as a Ray task, yielding each outcome (committed through `board`) as it
        comes; at most twice as many tasks as the cluster has slots are in flight. On any
        exception, Ctrl-C or early close, cancel every task."""
        config, store = self.config, board.store
        ray, owned = _connect(config.ray_address)
        try:
            hub = ray.remote(num_cpus=0)(_Hub).remote()
            task = ray.remote(_source_task).options(
                num_cpus=config.cpus_per_source, max_retries=TASK_RETRIES, retry_exceptions=False
            )
            pending = iter(jobs)
            running: dict[Any, Job] = {}
            seen: dict[str, set[str]] = {}
            try:
                while True:
                    slots = ray.cluster_resources().get("CPU", 1) / config.cpus_per_source
                    window = 2 * max(1, int(slots))
                    while len(running) < window and (job := next(pending, None)) is not None:
                        source, split = job
                        damaged = store.damaged(source.source_id)
                        record = damaged.read_bytes() if damaged.is_file() else None
                        running[task.remote(source, split, config, record, hub)] = job
                        seen[source.source_id] = set()
                    if not running:
                        break
                    done, _ = ray.wait(list(running), num_returns=len(running), timeout=_WAIT)
                    for source_id, names, nbytes in ray.get(hub.drain.remote()):
                        _advance(board, seen.get(source_id), names, nbytes)
                    for ref in done:
                        source, split = running.pop(ref)
                        yield _finish(ray, ref, source, split, board, seen)
            except BaseException:
                for ref in running:
                    ray.cancel(ref, force=True)
                raise
            log.info("ray: %d of %d sources ran as tasks", len(jobs), board.total)
        finally:
            if owned:
                ray.shutdown()


def _connect(address: str) -> tuple[Any, bool]:
    """(the `ray` module, whether this call connected it): connected to the cluster at `address`
    ("auto": the running one, else a new local instance) unless this process already is. Raises
    BuildStopped (exit 2) without Ray or a reachable cluster."""
    try:
        import ray
    except ImportError:
        raise BuildStopped(2, "--engine ray needs Ray: pip install 'landscape-av[ray]'") from None
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(
            address=None if address == "auto" else address,
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BuildStopped(2, f"--ray-address {address}: cannot reach a Ray cluster: {e}") from None
    return ray, True


def _advance(board: Board, seen: set[str] | None, names: Sequence[str], nbytes: int) -> None:
    """Count the stages `names` done for a source whose stages `seen` are counted already (a
    retried task reports them again), once each."""
    if seen is None:  # the source is finished: all its stages are counted
        return
    new = [name for name in names if name not in seen]
    seen.update(new)
    if new:
        board.advance(*new, nbytes=nbytes)


def _finish(
    ray: Any, ref: Any, source: Source, split: str, board: Board, seen: dict[str, set[str]]
) -> Outcome:
    """The outcome of a finished task, committed through `board` as the local engine would."""
    done = seen.pop(source.source_id)
    left = [name for name in STAGES if name not in done]
    try:
        result: _Result = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        reason, detail = "error", str(e.cause if e.cause is not None else e).splitlines()[-1]
    except ray.exceptions.RayError as e:
        reason = "worker_died"
        detail = f"{type(e).__name__} (tried {TASK_RETRIES + 1} times): {str(e).splitlines()[0]}"
    else:
        for name, level, message in result.logs:
            logging.getLogger(name).log(level, "%s", message)
        log.debug("%s: ran on node %s", source.source_id, result.node)
        store = board.store
        _mirror(store.damaged(source.source_id), result.damaged)
        for name, data in result.downloads.items():
            atomic_write(store.work / DOWNLOADS_DIR / name, data)
        if not result.committed:
            board.advance(*left)
            return result.outcome
        board.advance(*(name for name in left if name != "clip"))
        staging = None
        if result.files:
            staging = store.staging(source.source_id)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for name, data in result.files.items():
                (staging / name).write_bytes(data)
        return board.commit(result.outcome, staging)
    stage = "clip" if "probe" in done else "probe" if "download" in done else "download"
    log.warning("%s: failed at %s (%s): %s", source.source_id, stage, reason, detail)
    board.advance(*left)
    return Outcome(source, split, "failed", stage, reason, detail)


def _mirror(path: Path, data: bytes | None) -> None:
    """`path` holds `data`, or is absent for None."""
    if data is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)


# --- actors -------------------------------------------------------------------------------------


class _Hub:
    """The tasks' link to the driver: progress events and the network watch."""

    def __init__(self) -> None:
        self.network = NetworkWatch()
        self.events: list[tuple[str, tuple[str, ...], int]] = []

    def give_up(self, reason: str, url: str) -> bool:
        return self.network.give_up(reason, url)

    def advanced(self, source_id: str, names: tuple[str, ...], nbytes: int) -> None:
        self.events.append((source_id, names, nbytes))

    def downloaded(self, source_id: str, nbytes: int) -> None:
        self.network.succeeded()
        self.events.append((source_id, ("download",), nbytes))

    def drain(self) -> list[tuple[str, tuple[str, ...], int]]:
        events, self.events = self.events, []
        return events


def _alive(pid: int) -> bool:
    """Whether process `pid` of this node runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# --- the task -----------------------------------------------------------------------------------


class _TaskHooks:
    """The `source_stages.StageHooks` of a task: progress goes to the hub, downloads take a slot
    of this node, the encoders' CPUs are Ray's (`--cpus-per-source`), and the commit stays in the
    scratch folder's `store` (the driver makes it final)."""

    def __init__(self, ray: Any, source_id: str, hub: Any, slots: _Slot, store: SampleStore):
        self.ray, self.source_id, self.hub, self.store = ray, source_id, hub, store
        self.downloading = slots
        self.clipping = contextlib.nullcontext()
        self.committed = False

    def give_up(self, reason: str, url: str) -> bool:
        return self.ray.get(self.hub.give_up.remote(reason, url))

    def advance(self, *names: str, nbytes: int = 0) -> None:
        self.hub.advanced.remote(self.source_id, names, nbytes)

    def downloaded(self, path: Path) -> None:
        self.hub.downloaded.remote(self.source_id, path.stat().st_size)

    def commit(self, outcome: Outcome, staging: Path | None) -> Outcome:
        self.store.commit(outcome, staging)
        self.committed = True
        return outcome


class _Slot:
    """One of `size` download slots of this node (shared by the builds running on it), held while
    in the block: an exclusive lock on one of `size` files in the node's temp folder (polled, the
    first free one wins)."""

    def __init__(self, size: int) -> None:
        self.folder = Path(tempfile.gettempdir()) / SCRATCH / "downloads"
        self.size = size
        self.held: int | None = None

    def __enter__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            for i in range(self.size):
                fd = os.open(self.folder / f"{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self.held = fd
                return
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.held is not None:
            os.close(self.held)  # closing the file drops its lock
            self.held = None


def _source_task(
    source: Source,
    split: str,
    config: BuildConfig,
    damaged: bytes | None,
    hub: Any,
) -> _Result:
    """One source, in a Ray task: `process` in a scratch folder of this node; its results."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    with _scratch() as work, captured_log() as logs:
        store = SampleStore(work)
        hooks = _TaskHooks(ray, source.source_id, hub, _Slot(config.downloads), store)
        record = store.damaged(source.source_id)
        if damaged is not None:
            record.parent.mkdir(parents=True)
            record.write_bytes(damaged)
        outcome = process(source, split, config, work, hooks)
        files = {}
        if hooks.committed:
            committed = store.path(source.source_id)
            files = {p.name: p.read_bytes() for p in committed.iterdir() if p.name != SOURCE_RECORD}
        downloads = {}
        if config.keep_downloads and (work / DOWNLOADS_DIR).is_dir():
            downloads = {
                p.name: p.read_bytes()
                for p in (work / DOWNLOADS_DIR).iterdir()
                if p.is_file() and p.name != PARTIAL_DIR
            }
        left = record.read_bytes() if record.is_file() else None
    return _Result(outcome, hooks.committed, files, left, downloads, logs, node)


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """A fresh folder in this node's temp folder, removed afterwards; first, those of worker
    processes that died (killed mid-task) are removed."""
    parent = Path(tempfile.gettempdir()) / SCRATCH
    parent.mkdir(exist_ok=True)
    for old in parent.iterdir():
        pid = old.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
