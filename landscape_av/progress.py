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
    """Items (or MB, for byte-counting tasks) per second."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        speed = task.finished_speed or task.speed
        if not speed:
            return "-"
        if task.fields.get("unit") == "MB":
            return f"{speed / 1e6:.1f} MB/s"
        return f"{speed:.2f}/s"


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Progress]:
    """A rich Progress showing count, percentage, rate, elapsed and ETA; invisible when quiet."""
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
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
