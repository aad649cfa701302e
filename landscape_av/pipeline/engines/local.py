"""The local engine (`--engine local`, the default): each source's stages run in a thread of this
machine. Up to `workers` sources are clipped at once (each clip encoder runs on one thread, for
reproducible bytes: `clip.X264_THREADS`), and meanwhile up to `downloads` more are fetched, probed
and filtered, so that encoding does not wait for the network."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from landscape_av import processes
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.download import close_workers
from landscape_av.pipeline.engines.interface import Board, Job
from landscape_av.pipeline.network import NetworkWatch
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.source_stages import process


class LocalEngine:
    """`interface.Engine` in a thread pool of `workers + downloads` threads."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config

    def run(self, jobs: Sequence[Job], board: Board) -> Iterator[Outcome]:
        """`process` every job in the pool, yielding outcomes as they come; on any exception,
        Ctrl-C or early close, stop every child and cancel what has not begun."""
        config, work = self.config, board.store.work
        hooks = _Slots(board, config)
        pool = ThreadPoolExecutor(max_workers=config.workers + config.downloads)
        futures = [pool.submit(process, s, split, config, work, hooks) for s, split in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            processes.stop_all()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            close_workers()  # the build leaves no download worker behind
        pool.shutdown()


class _Slots:
    """The `source_stages.StageHooks` that the threads share: `downloads` slots for fetching and
    `workers` for clipping (a thread holds one at a time, so the next sources are fetched, probed
    and filtered while others are encoded), the network watch, and the `board`."""

    def __init__(self, board: Board, config: BuildConfig) -> None:
        self.board = board
        self.downloading = threading.BoundedSemaphore(config.downloads)
        self.clipping = threading.BoundedSemaphore(config.workers)
        self.network = NetworkWatch()

    def give_up(self, reason: str, url: str) -> bool:
        return self.network.give_up(reason, url)

    def downloaded(self, path: Path) -> None:
        self.network.succeeded()
        self.board.advance("download", nbytes=path.stat().st_size)
        self.board.crasher.done("download")

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        self.board.advance(*stages, nbytes=nbytes)

    def commit(self, outcome: Outcome, staging: Path | None) -> Outcome:
        return self.board.commit(outcome, staging)
