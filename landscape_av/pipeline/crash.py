"""Crash points for the resume tests: `LANDSCAPE_AV_CRASH_AT=<stage>:<n>` makes the build kill
itself with SIGKILL right after its n-th completion of `stage` in this run: `download`, `clip` (a
committed source), `shard` (a written shard), `swap` (a step of the swap into OUT) or `publish`
(see `publish`)."""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "LANDSCAPE_AV_CRASH_AT"


class Crasher:
    """Kills the process with SIGKILL after the n-th completion of the stage named by `CRASH_ENV`
    (none when it is unset)."""

    def __init__(self) -> None:
        stage, _, count = os.environ.get(CRASH_ENV, "").partition(":")
        self.stage, self.count = stage, int(count or 0)
        self.seen = 0
        self.lock = threading.Lock()

    def done(self, stage: str) -> None:
        if stage != self.stage:
            return
        with self.lock:
            self.seen += 1
            if self.seen >= self.count:
                os.kill(os.getpid(), signal.SIGKILL)
