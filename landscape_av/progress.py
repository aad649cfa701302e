"""Progress bars per build stage and the end-of-build summary table (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)


class _Rate(TextColumn):
    """Items per second."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        speed = task.finished_speed or task.speed
        return f"{speed:.2f}/s" if speed else "-"


class _Bytes(TextColumn):
    """Bytes moved by the stage so far (the task's `bytes` field)."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        return f"{task.fields.get('bytes', 0) / 1e6:,.1f} MB"


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Progress]:
    """A rich Progress showing count, percentage, rate, bytes, elapsed and ETA; invisible when
    quiet. Tasks carry a `bytes` field (update it with `progress.update(task, bytes=...)`)."""
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        _Bytes(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
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
