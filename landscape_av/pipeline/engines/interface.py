"""The one interface of the build's engines (`Engine`), and the driver's side that every engine
reports to (`Board`): the stage progress bars and the commit of each source's result into the work
folder's sample store, so that whatever engine ran a source, its committed result is the same."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from rich.progress import Progress

from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.crash import Crasher
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.sample_store import SampleStore
from landscape_av.pipeline.source_stages import STAGES
from landscape_av.sources.source_list import Source

Job = tuple[Source, str]
"""A source to run, with its split."""


class Board:
    """The driver's side of the per-source stages of `total` sources: their progress bars
    (`advance`) and the commit of each result into `store` (`commit`), after which `on_commit`
    gets its folder (the upload of a build to a URL) and the `clip` crash point counts it."""

    def __init__(
        self,
        progress: Progress,
        total: int,
        store: SampleStore,
        crasher: Crasher,
        on_commit: Callable[[Path], None] | None = None,
    ) -> None:
        self.progress, self.total, self.store = progress, total, store
        self.crasher, self.on_commit = crasher, on_commit
        self.tasks = {name: progress.add_task(name, total=total, bytes=0) for name in STAGES}
        self.moved: Counter[str] = Counter()
        self.lock = threading.Lock()  # progress counts
        self.committing = threading.Lock()  # a crash after n commits leaves exactly n

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        """Count one more source done with each of `stages` in the progress bars."""
        with self.lock:
            for stage in stages:
                self.moved[stage] += nbytes
                self.progress.update(self.tasks[stage], advance=1, bytes=self.moved[stage])

    def commit(self, outcome: Outcome, staging: Path | None) -> Outcome:
        """Make a source's result final (`SampleStore.commit`, its files in `staging`), hand its
        folder to `on_commit`, and count it done with the clip stage."""
        with self.committing:
            committed = self.store.commit(outcome, staging)
            if self.on_commit is not None:
                self.on_commit(committed)
            self.crasher.done("clip")
        self.advance("clip", nbytes=sum(p.stat().st_size for p in committed.iterdir()))
        return outcome


class Engine(Protocol):
    """Runs the per-source stages of a build's sources (made with the build's `BuildConfig`:
    `registry.open_engine`), in the work folder of the `board`'s sample store."""

    def run(self, jobs: Sequence[Job], board: Board) -> Iterator[Outcome]:
        """Run `source_stages.process` for each (source, split) of `jobs`, yielding each outcome
        as it comes, its result committed through `board` where it is to be kept. Closing the
        iterator (the build stops: the network is down, Ctrl-C, an error) stops the engine at
        once: its running children are killed and what has not begun is cancelled."""
        ...


EngineFactory = Callable[[BuildConfig], Engine]
"""How an engine is made: from the build's settings."""
