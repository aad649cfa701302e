"""Child processes that never outlive the build: every ffmpeg and yt-dlp child is started here.

Each child runs in its own process group, registered while it runs, so that `stop_all` (Ctrl-C,
an early stop) kills every running one and refuses to start more; on Linux each also gets
`PR_SET_PDEATHSIG` (SIGKILL, or a signal the child handles by killing its own group, when it has
children of its own), so that a build killed with -9 takes its children with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
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
    if _stopping.is_set():
        raise Stopped("the build is stopping")
    preexec = _PREEXEC[death_signal]
    proc = subprocess.Popen(cmd, preexec_fn=preexec, start_new_session=True, **popen)
    with _lock:
        _running.add(proc)
    try:
        yield proc
    finally:
        with _lock:
            _running.discard(proc)
        if proc.poll() is None:
            kill_group(proc)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


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
