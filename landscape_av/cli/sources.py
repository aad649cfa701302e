"""`landscape-av sources ...`: make source lists from the published lists, and check source lists
(`manifest` is the hidden old name of the group)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from landscape_av.classes import class_vocabulary
from landscape_av.schema import SPLITS
from landscape_av.sources.source_list import SourceListError, read_source_list, write_source_list
from landscape_av.sources.vggsound import (
    LANDSCAPE_URL,
    Conversion,
    FetchError,
    convert_landscape_list,
    convert_vggsound,
    convert_vggsounder,
    fetch_text,
    print_report,
    write_faults,
)

POLICY = """\b
Fault policy (each faulty row is reported with its line):
  malformed row, invalid YouTube id, exact repeat   -> row dropped
  id under two classes                               -> every row of the id dropped
  id in both splits                                  -> test wins: its train rows dropped
  id again with another start                        -> first row kept, later ones dropped
  start past an hour                                 -> kept, reported"""

_file = click.Path(dir_okay=False, path_type=Path)


def _finish(conversion: Conversion, out: Path, report: Path | None, quiet: bool) -> None:
    """Report a conversion, write its source list (and fault CSV), fail when nothing is left."""
    console = Console(quiet=quiet)
    print_report(conversion, console)
    if not conversion.sources:
        raise click.ClickException(f"{conversion.name}: no usable rows; nothing written")
    write_source_list(conversion.sources, out)
    console.print(f"Wrote {len(conversion.sources)} sources to {out}")
    if report is not None:
        write_faults(conversion.faults, report)
        console.print(f"Wrote {len(conversion.faults)} faults to {report}")


@click.group("sources")
def sources_group() -> None:
    """Make source lists from the published lists, and check source lists."""


manifest_alias = click.Group(
    "manifest", commands=sources_group.commands, hidden=True, help="Old name of `sources`."
)


@sources_group.command("landscape", epilog=POLICY)
@click.option("--url", default=LANDSCAPE_URL, show_default=True, help="The list (URL or file).")
@click.option("--out", type=_file, default=Path("landscape.csv"), show_default=True)
@click.option("--report", type=_file, help="Also write the faults as CSV here.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=15.0)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def landscape(url: str, out: Path, report: Path | None, timeout: float, quiet: bool) -> None:
    """Download the paper's source list (published by TempoTokens) and convert it.

    Maps its VGGSound-style names to the nine classes (thunder -> thunderstorm, explosion ->
    volcano eruption), applies the fault policy below and prints every fault with its line.
    """
    try:
        text = fetch_text(url, timeout)
    except FetchError as e:
        raise click.ClickException(str(e)) from None
    _finish(convert_landscape_list(text, url), out, report, quiet)


@sources_group.command("vggsounder", epilog=POLICY)
@click.option(
    "--vggsound-csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A full VGGSound list (ytid,start,label,split) to convert instead of VGGSounder's clips.",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A VGGSounder label file [default: the installed vggsounder package's].",
)
@click.option("--out", type=_file, default=Path("vggsounder.csv"), show_default=True)
@click.option("--report", type=_file, help="Also write the faults as CSV here.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def vggsounder(
    vggsound_csv: Path | None, labels: Path | None, out: Path, report: Path | None, quiet: bool
) -> None:
    """Make the offline pool from the VGGSounder labels (regenerates manifests/vggsounder.csv).

    Keeps clips of the nine classes that VGGSounder marks audible and visible (AV) and that have no
    background music, static image or voice-over. With --vggsound-csv, that list's rows are
    converted instead, filtered the same way where VGGSounder annotated the clip.
    """
    try:
        conversion = convert_vggsounder(labels, vggsound_csv)
    except (ImportError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    _finish(conversion, out, report, quiet)


@sources_group.command("vggsound", epilog=POLICY)
@click.argument("vggsound_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--classes",
    default="all",
    show_default=True,
    help="'all' or a comma list of the list's VGGSound class names.",
)
@click.option("--out", type=_file, default=Path("vggsound.csv"), show_default=True)
@click.option("--report", type=_file, help="Also write the faults as CSV here.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def vggsound(vggsound_csv: Path, classes: str, out: Path, report: Path | None, quiet: bool) -> None:
    """Convert a VGGSound list (ytid,start,label,split) keeping its own classes: the corpus of the
    sound encoder F_a (paper §4.1). Build it with `landscape-av build --source-list OUT --any-class`.
    """
    try:
        conversion = convert_vggsound(vggsound_csv, classes)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--classes'") from None
    _finish(conversion, out, report, quiet)


@sources_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--allow-local", is_flag=True, help="Accept local files, as `build --allow-local`.")
@click.option("--any-class", is_flag=True, help="Accept any class, as `build --any-class`.")
def check(file: Path, allow_local: bool, any_class: bool) -> None:
    """Validate a source list by the build's rules and count its sources per class and split."""
    try:
        sources = read_source_list(file, allow_local, any_class)
    except SourceListError as e:
        raise click.ClickException(str(e)) from None
    counts = Counter((s.class_name, s.split or "") for s in sources)
    columns = [*SPLITS, ""]
    classes = class_vocabulary(s.class_name for s in sources)
    table = Table("class", *SPLITS, "unassigned", "total")
    for name in classes:
        cells = [counts[name, split] for split in columns]
        table.add_row(name, *map(str, cells), str(sum(cells)))
    totals = [sum(counts[name, split] for name in classes) for split in columns]
    table.add_row("all", *map(str, totals), str(len(sources)), style="bold")
    console = Console()
    console.print(f"{file}: {len(sources)} sources")
    console.print(table)
