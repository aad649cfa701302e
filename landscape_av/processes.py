"""Child processes that never outlive the build: every ffmpeg and yt-dlp child is started here.

Each child runs in its own process group, registered while it runs, so that `stop_all` (Ctrl-C,
an early stop) kills every running one and refuses to start more; on Linux each also gets
`PR_SET_PDEATHSIG` (SIGKILL, or a signal the child handles by killing its own group, when it has
children of its own), so that a build killed with -9 takes its children with it.

`child` is a child for the length of a block; `start` and `end` bound a long-lived one (a download
worker that serves many sources). The kernel sends the death signal when the *thread* that started
the child ends, not only the process, so long-lived children are started by one thread that lives
as long as the process (`_Spawner`): they die with the process, never with the thread that happened
to ask for them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()
_stopping = threading.Event()


class Stopped(Exception):
    """The build is stopping (`stop_all` was called): no new child is started."""


def _pdeathsig(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get `sig` when its parent dies (Linux only); the libc
    function is looked up here, so that the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return preexec


_PREEXEC = {sig: _pdeathsig(sig) for sig in (signal.SIGKILL, signal.SIGTERM)}


@contextmanager
def child(
    cmd: list[str], death_signal: int = signal.SIGKILL, **popen: Any
) -> Iterator[subprocess.Popen]:
    """Start `cmd` (Popen keywords `popen`) in a new process group that `stop_all` can kill and
    that gets `death_signal` when this process dies (SIGKILL; SIGTERM for a child that then kills
    its group, grandchildren included); the group is killed when the block exits."""
    proc = _popen(cmd, death_signal, popen)
    try:
        yield proc
    finally:
        end(proc)


def start(cmd: list[str], death_signal: int = signal.SIGKILL, **popen: Any) -> subprocess.Popen:
    """`child`'s process without the block: it runs until `end(proc)` (or `stop_all`, or the death
    of this process, whichever thread started it)."""
    return _SPAWNER.run(lambda: _popen(cmd, death_signal, popen))


def end(proc: subprocess.Popen) -> None:
    """Kill a child's group, close its pipes and reap it. The group goes even where the child
    has exited (until it is reaped its pid, so its group's id, stays its own): what it left there,
    such as the ffmpeg of a download worker that died, goes with it."""
    with _lock:
        _running.discard(proc)
    if proc.returncode is None:
        kill_group(proc)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait()


def _popen(cmd: list[str], death_signal: int, popen: dict[str, Any]) -> subprocess.Popen:
    if _stopping.is_set():
        raise Stopped("the build is stopping")
    preexec = _PREEXEC[death_signal]
    proc = subprocess.Popen(cmd, preexec_fn=preexec, start_new_session=True, **popen)
    with _lock:
        _running.add(proc)
    if _stopping.is_set():  # `stop_all` came while it started, and may have missed it
        end(proc)
        raise Stopped("the build is stopping")
    return proc


class _Spawner:
    """A thread that lives as long as the process and runs the calls handed to it (`run`): the
    parent thread of the long-lived children, whose death signal comes with the process's death."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def run(self, call: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self.thread.start()
        box: queue.SimpleQueue = queue.SimpleQueue()
        self.calls.put((call, box))
        proc, error = box.get()
        if error is not None:
            raise error
        return proc

    def _serve(self) -> None:
        while True:
            call, box = self.calls.get()
            try:
                box.put((call(), None))
            except BaseException as e:  # handed back to the caller, raised there
                box.put((None, e))


_SPAWNER = _Spawner()


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()


def stop_all() -> None:
    """Kill every running child's process group and refuse new children from now on."""
    _stopping.set()
    with _lock:
        procs = list(_running)
    for proc in procs:
        kill_group(proc)


def stopping() -> bool:
    return _stopping.is_set()


def wait(seconds: float) -> None:
    """Sleep `seconds`, or raise Stopped as soon as the build is stopping."""
    if _stopping.wait(seconds):
        raise Stopped("the build is stopping")


def reset() -> None:
    """Allow children again (a new build in the same process)."""
    _stopping.clear()
