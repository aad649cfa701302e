"""Progress bars per build stage and the end-of-build summary table (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

console = Console(stderr=True)


def mean_rate(task) -> float | None:
    """Items per second since the task started: what it has done in this process (beyond its
    `resumed_at` field: the steps a resumed run had already) over the time it has run. rich's own
    `speed` spans only the updates of a recent window, so two batches that land together read as
    thousands per second. None before the first item."""
    done, elapsed = task.completed - task.fields.get("resumed_at", 0), task.elapsed
    if done <= 0 or not elapsed:
        return None
    return done / elapsed


class RateColumn(TextColumn):
    """Items (`unit`) per second since the task started, per minute when under 0.1/s."""

    def __init__(self, unit: str = "") -> None:
        super().__init__("")
        self.unit = f" {unit}" if unit else ""

    def render(self, task):  # type: ignore[override]
        rate = mean_rate(task)
        if rate is None:
            return f"-{self.unit}/s"
        return f"{rate:.2f}{self.unit}/s" if rate >= 0.1 else f"{60 * rate:.2f}{self.unit}/min"


class _Bytes(TextColumn):
    """Bytes moved by the stage so far (the task's `bytes` field; blank for a task without one)."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        if "bytes" not in task.fields:
            return ""
        return f"{task.fields['bytes'] / 1e6:,.1f} MB"


class RemainingColumn(TextColumn):
    """Time left at the rate since the start; '-:--:--' before the first item or without a total."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        rate = mean_rate(task)
        if task.finished or rate is None or task.total is None:
            return "-:--:--"
        left = int((task.total - task.completed) / rate)
        return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


@contextmanager
def stage_progress(
    quiet: bool = False, get_time: Callable[[], float] | None = None
) -> Iterator[Progress]:
    """A rich Progress showing count, percentage, rate, bytes, elapsed and ETA; invisible when
    quiet. A task that carries a `bytes` field (`progress.add_task(..., bytes=0)`, then
    `progress.update(task, bytes=...)`) shows it. `get_time`: the clock (the tests' own)."""
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        _Bytes(),
        TimeElapsedColumn(),
        RemainingColumn(),
        console=console,
        disable=quiet,
        get_time=get_time,
    )
    with progress:
        yield progress


def print_summary(title: str, rows: Mapping[str, object], quiet: bool = False) -> None:
    """A two-column table (what, how many) on stderr."""
    if quiet:
        return
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows.items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
