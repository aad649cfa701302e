"""The progress columns: a rate and an ETA from the time a task has run, bytes only where counted."""

from __future__ import annotations

from landscape_av.progress import stage_progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cells(progress, task) -> list[str]:
    return [str(column.render(progress.tasks[task])) for column in progress.columns]


def test_a_burst_of_items_reads_at_the_rate_since_the_start() -> None:
    """10 items after 20 s, reported in two batches a microsecond apart (as parallel shards land):
    0.50/s, and 20 s left for the 10 to come; not the thousands per second of a window of two
    updates."""
    clock = Clock()
    with stage_progress(quiet=True, get_time=clock) as progress:
        task = progress.add_task("verify", total=20)
        clock.now += 20
        progress.advance(task, 5)
        clock.now += 1e-6
        progress.advance(task, 5)
        cells = _cells(progress, task)
    assert "0.50/s" in cells and "0:00:20" in cells


def test_a_slow_task_reads_per_minute_and_bytes_show_only_where_counted() -> None:
    clock = Clock()
    with stage_progress(quiet=True, get_time=clock) as progress:
        counted = progress.add_task("download", total=10, bytes=0)
        uncounted = progress.add_task("verify", total=10)
        clock.now += 120
        progress.update(counted, advance=1, bytes=3_500_000)
        progress.advance(uncounted, 1)
        assert "0.50/min" in _cells(progress, counted) and "3.5 MB" in _cells(progress, counted)
        assert not any("MB" in cell for cell in _cells(progress, uncounted))
        fresh = progress.add_task("clip", total=10)
        assert "-/s" in _cells(progress, fresh) and "-:--:--" in _cells(progress, fresh)


def test_a_resumed_task_reads_at_the_rate_of_its_own_items() -> None:
    """A run resumed at step 50 of 100 that takes 10 steps in 20 s: 0.50 steps/s, 80 s left."""
    from landscape_av.progress import RateColumn, RemainingColumn

    clock = Clock()
    with stage_progress(quiet=True, get_time=clock) as progress:
        task = progress.add_task("train", total=100, completed=50, resumed_at=50)
        clock.now += 20
        progress.advance(task, 10)
        t = progress.tasks[task]
        assert str(RateColumn("steps").render(t)) == "0.50 steps/s"
        assert str(RemainingColumn().render(t)) == "0:01:20"


def test_the_build_bars_count_bytes_of_download_and_clip_only(tmp_path) -> None:
    """The build's stage bars (`Board`): download and clip say the bytes they moved; probe, which
    reads what download fetched, says none (no '0.0 MB' beside it)."""
    from landscape_av.pipeline.crash import Crasher
    from landscape_av.pipeline.engines.interface import Board
    from landscape_av.pipeline.sample_store import SampleStore

    with stage_progress(quiet=True, get_time=Clock()) as progress:
        board = Board(progress, 2, SampleStore(tmp_path), Crasher())
        board.advance("download", nbytes=2_000_000)
        board.advance("download", "probe", nbytes=1_500_000)  # as the Ray engine reports them
        board.advance("probe", "clip", nbytes=700_000)
        cells = {name: " ".join(_cells(progress, task)) for name, task in board.tasks.items()}
    assert "3.5 MB" in cells["download"] and "0.7 MB" in cells["clip"]
    assert "MB" not in cells["probe"] and "2/2" in cells["probe"]
