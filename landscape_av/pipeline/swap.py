"""How a failed or interrupted build keeps the old corpus: the new one is written in a staging
folder beside OUT (`staging_dir`, on the same file system) and, once finished, trades places with
OUT in one step (`swap_in`), so OUT always holds the old corpus or the new one, whole. A kill
during the swap is completed by the next run's `recover`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from landscape_av.pipeline.crash import Crasher
from landscape_av.schema import WORK_DIR


def staging_dir(out: Path) -> Path:
    """Sibling of `out` where the new corpus is written before `swap_in` (same file system)."""
    return out.parent / f".{out.name}.staging"


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover(out: Path) -> None:
    """Finish what a kill during `swap_in` left undone: the work folder goes back into `out`,
    and where renames stand in for the exchange, the old corpus back to `out` or away."""
    old, staging = _old_dir(out), staging_dir(out)
    if old.is_dir():
        if out.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, out)
    if (staging / WORK_DIR).is_dir() and not (out / WORK_DIR).exists():
        out.mkdir(parents=True, exist_ok=True)
        os.replace(staging / WORK_DIR, out / WORK_DIR)


def swap_in(staging: Path, out: Path, crasher: Crasher) -> None:
    """Make the finished corpus in `staging` the one in `out`: the work folder moves along, then
    the two folders trade names in one step and the old corpus is removed. Killed at any point,
    `out` holds the old corpus or the new one, whole (`recover` puts the work folder back)."""
    os.replace(out / WORK_DIR, staging / WORK_DIR)
    crasher.done("swap")
    exchange(staging, out)
    crasher.done("swap")
    shutil.rmtree(staging)


def exchange(a: Path, b: Path) -> None:
    """Swap the names of two folders: atomically with Linux's renameat2(RENAME_EXCHANGE), else
    with three renames (`recover` completes them after a kill)."""
    if _RENAMEAT2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if _RENAMEAT2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(b))
    old = _old_dir(b)
    os.replace(b, old)
    os.replace(a, b)
    os.replace(old, a)


def _renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None
