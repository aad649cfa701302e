"""`landscape-av build`: turn a source list into the corpus (see landscape_av.pipeline.build).

Its settings options are made from `BuildConfig` and the stages' options it nests (see
`landscape_av.pipeline.settings`), under one heading per stage in --help."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from landscape_av import processes
from landscape_av.classes import CLASSES, class_vocabulary, parse_class_selection
from landscape_av.cli.corpus import Location, warn_cache
from landscape_av.curation.models import CurationUnavailable
from landscape_av.near_miss import Choice
from landscape_av.pipeline.build import build
from landscape_av.pipeline.checks import check_folder
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.exits import EXIT_CODES, EXIT_INTERRUPTED, BuildStopped
from landscape_av.pipeline.publish import build_remote, prepare
from landscape_av.pipeline.settings import Leaf, flat_settings, from_flat
from landscape_av.pipeline.swap import recover
from landscape_av.progress import console
from landscape_av.schema import WORK_DIR
from landscape_av.sources.source_list import (
    Source,
    SourceListError,
    read_source_list,
    select_sources,
)
from landscape_av.sources.split import assign_splits
from landscape_av.storage import Remote, StorageError, mirror_dir

_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)


def _size(ctx, param, value: str) -> tuple[int, int]:
    m = _SIZE_RE.match(value.strip())
    if not m or min(int(m[1]), int(m[2])) < 2:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT (e.g. 1280x720)")
    return int(m[1]), int(m[2])


def _bytes(ctx, param, value: str) -> int:
    m = _BYTES_RE.match(value.strip())
    if not m:
        raise click.BadParameter(f"{value!r} is not a size like 1GB, 500MB or 1000000")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _classes(text: str, vocabulary: tuple[str, ...]) -> tuple[str, ...]:
    """The --classes selection among `vocabulary` (a usage error, exit 2, for an unknown name)."""
    try:
        return parse_class_selection(text, vocabulary)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--classes'") from None


STAGES = {
    "": "Build options",
    "download": "Download options",
    "filter": "Filter options",
    "clip": "Clip options",
    "curate": "Curation options",
    "shard": "Shard options",
}
"""--help heading of each stage's settings (by the BuildConfig field that holds them)."""
_LEAVES = flat_settings(BuildConfig())


class _SettingOption(click.Option):
    """An option made from a build setting; `section` is its stage's heading in --help."""

    def __init__(self, *args: Any, section: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


class _BuildCommand(click.Command):
    """A command whose --help lists the settings options under their stages' headings."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "section", "Options"), []).append(record)
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def _option(name: str, leaf: Leaf) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of a setting (see `pipeline.settings.Setting`)."""
    s = leaf.setting
    kwargs: dict[str, Any] = {"help": s.help, "default": leaf.value, "show_default": s.show or True}
    if s.kind == "size":
        kwargs |= {"default": f"{leaf.value}x{_LEAVES[s.pair].value}", "callback": _size}
    elif s.kind == "bytes":
        kwargs |= {"default": str(leaf.value), "callback": _bytes}
    elif leaf.type is bool:
        kwargs |= {"is_flag": True, "show_default": False}
    elif s.path == "folder":
        kwargs["type"] = Location()
    elif s.choices:
        kwargs["type"] = Choice(s.choices)
    elif s.path:
        kwargs["type"] = click.Path(dir_okay=False, exists=True, path_type=Path)
    elif leaf.type in (int, float) and (s.low is not None or s.high is not None):
        bounds = click.IntRange if leaf.type is int else click.FloatRange
        kwargs["type"] = bounds(s.low, s.high, **({"min_open": True} if s.low_open else {}))
    elif leaf.type in (int, float):
        kwargs["type"] = leaf.type
    flag = s.flag or "--" + name.replace("_", "-")
    section = STAGES[leaf.path[0] if len(leaf.path) > 1 else ""]
    return click.option(flag, name, cls=_SettingOption, section=section, **kwargs)


def _settings_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add an option for every build setting with a help text, in stage order."""
    for name, leaf in reversed(_LEAVES.items()):
        if leaf.setting.help:
            f = _option(name, leaf)(f)
    return f


def _config(settings: dict[str, Any], quiet: bool) -> BuildConfig:
    """The BuildConfig of the settings options' values (a WIDTHxHEIGHT one sets two settings)."""
    values: dict[str, Any] = {"quiet": quiet}
    for name, value in settings.items():
        pair = _LEAVES[name].setting.pair
        if pair:
            values[name], values[pair] = value
        else:
            values[name] = value
    return from_flat(BuildConfig, values)


def _exit_codes_help() -> str:
    return "Exit codes: " + "; ".join(f"{code}: {what}" for code, what in EXIT_CODES.items()) + "."


def _interruptible(command: Callable[..., None]) -> Callable[..., None]:
    """`command`, where Ctrl-C anywhere (making the demo sources, fetching the default list, the
    build) kills the children at once and ends with one line and exit 130 (`_stop`)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            processes.stop_all()
            message = "interrupted; run the same command to resume"
            _stop(BuildStopped(EXIT_INTERRUPTED, message))

    return run


@click.command("build", cls=_BuildCommand, epilog=_exit_codes_help())
@click.option(
    "--source-list",
    "--manifest",
    "source_list",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Source list CSV (default: the paper's list; --manifest is its old name).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Build offline from the built-in demo sources, served on 127.0.0.1.",
)
@click.option(
    "--demo-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Port of the --demo server [default: 8765, fixed so that URLs repeat; 0: any free port].",
)
@click.option(
    "--classes",
    default="all",
    show_default=True,
    help="'all' or a comma list of class names (of the list's classes with --any-class).",
)
@click.option(
    "--any-class",
    is_flag=True,
    help="Keep classes outside the nine Landscape ones (a VGGSound list): labels then index the "
    "list's own classes, sorted (build.json's `classes`).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many sources in all.")
@click.option("--max-per-class", type=click.IntRange(min=1), help="At most this many per class.")
@click.option("--dry-run", is_flag=True, help="List the plan and stop.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or tables.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local folder that a build to a URL --out runs in [default: one per URL under "
    "~/.cache/landscape-av/builds].",
)
@_settings_options
@_interruptible
def build_command(
    source_list: Path | None,
    demo: bool,
    demo_port: int | None,
    classes: str,
    any_class: bool,
    limit: int | None,
    max_per_class: int | None,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
    work_dir: Path | None,
    **settings: Any,
) -> None:
    """Download, filter, clip and shard the sources of a source list into a corpus folder, or to
    an fsspec URL (s3://bucket/prefix: credentials from the environment, see the README)."""
    if demo and source_list is not None:
        raise click.UsageError("--demo and --source-list exclude each other")
    if demo_port is not None and not demo:
        raise click.UsageError("--demo-port needs --demo")
    if not any_class:
        _classes(classes, CLASSES)  # before any list is fetched
    remote = _remote(settings, work_dir)
    config = _config(settings, quiet or as_json)
    try:
        config.curate.models()  # --speech / --shots: their packages are there
    except CurationUnavailable as e:
        click.echo(f"landscape-av build: {e}", err=True)
        sys.exit(2)
    min_size = (config.filter.min_width, config.filter.min_height)
    if not dry_run:
        try:
            if remote is not None:
                prepare(remote)  # a publish that a kill interrupted; a URL that is no corpus
            else:
                recover(config.out)  # a swap that a kill interrupted
                check_folder(config.out)
        except BuildStopped as e:
            _stop(e)
    local = config.download.allow_local
    demo_classes = _classes(classes, CLASSES) if demo else ()
    with _source_list(
        source_list,
        demo_classes,
        demo_port,
        config.out,
        min_size,
        config.quiet,
        local,
        any_class,
    ) as (sources, name):
        vocabulary = class_vocabulary(s.class_name for s in sources)
        try:
            chosen = select_sources(sources, _classes(classes, vocabulary), limit, max_per_class)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        if not chosen:
            raise click.UsageError(f"{name}: no sources of the selected classes")
        if dry_run:
            out = remote.url if remote else str(config.out)
            _print_plan(chosen, config, name, as_json, vocabulary, out)
            return
        try:
            if remote is not None:
                result = build_remote(chosen, config, name, remote, classes=vocabulary)
            else:
                result = build(chosen, config, source_list=name, classes=vocabulary)
        except BuildStopped as e:
            _stop(e)
    if result.replaced_clips is not None:  # said even with --quiet: a corpus shrank
        click.echo(f"landscape-av build: {result.replaced()}", err=True)
    if remote is None:
        warn_cache(config.out)
    elif not config.quiet:
        console.print(f"published to {remote.url}")
    if as_json:
        summary = result.summary() | ({"out": remote.url} if remote else {})
        click.echo(json.dumps(summary, indent=1))


def _remote(settings: dict[str, Any], work_dir: Path | None) -> Remote | None:
    """For a URL --out: its Remote, the build's `out` setting becoming the local folder it runs
    in (--work-dir, else one per URL in the cache); None for a folder."""
    if not isinstance(settings["out"], str):
        if work_dir is not None:
            raise click.UsageError("--work-dir is for a URL --out (a folder is its own)")
        return None
    try:
        remote = Remote(settings["out"])
    except StorageError as e:
        raise click.BadParameter(str(e), param_hint="'--out'") from None
    settings["out"] = work_dir or mirror_dir(remote.url)
    return remote


def _stop(e: BuildStopped) -> typing.NoReturn:
    """End the command with the build's one-line summary and exit code. Interrupted, the process
    exits at once, without waiting for its worker threads to finish the step they are in (a
    decode, a hash: seconds on a loaded machine): what they leave is what a kill -9 leaves, which
    the next run takes up (the children are already killed, the failures so far written)."""
    click.echo(f"landscape-av build: {e}", err=True)
    if e.code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(e.code)
    sys.exit(e.code)


@contextlib.contextmanager
def _source_list(
    path: Path | None,
    demo: tuple[str, ...],
    demo_port: int | None,
    out: Path,
    size: tuple[int, int],
    quiet: bool,
    allow_local: bool,
    any_class: bool,
) -> Iterator[tuple[list[Source], str]]:
    """(sources, name of the list) for the build; for --demo, the demo sources of the classes in
    `demo` are made under OUT/.work/demo-sources at the minimum size (the low-resolution one at
    half of it) and served on the demo port (fixed by default) while the build runs."""
    if demo:
        from landscape_av.sources.demo import (
            DEMO_SOURCE_LIST,
            make_demo_sources,
            write_demo_source_list,
        )
        from landscape_av.sources.serve import DEMO_PORT, serve_folder

        folder = out / WORK_DIR / "demo-sources"
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            try:  # first: a port that another server holds is one line, before any rendering
                url = stack.enter_context(
                    serve_folder(folder, DEMO_PORT if demo_port is None else demo_port)
                )
            except OSError as e:
                hint = "pass --demo-port 0 for any free port"
                raise click.ClickException(f"{e.strerror or e}: {hint}") from None
            if not quiet:
                console.print(f"Making the demo sources ({size[0]}x{size[1]}) in {folder}")
            demo_sources = make_demo_sources(folder, size=size, quiet=quiet, classes=demo)
            path = write_demo_source_list(demo_sources, url, folder.parent / "demo-sources.csv")
            yield read_source_list(path, allow_local), DEMO_SOURCE_LIST
        return
    if path is None:
        from landscape_av.sources.vggsound import default_source_list

        path, why = default_source_list(out / WORK_DIR / "source-list", quiet=quiet)
        if not quiet:
            console.print(f"Using {path}: {why}")
    try:
        yield read_source_list(path, allow_local, any_class), str(path)
    except SourceListError as e:
        raise click.ClickException(str(e)) from None


PLAN_ROWS = 20
"""Sources that `--dry-run` shows in its table (`--json` lists them all)."""


def _print_plan(
    sources: list[Source],
    config: BuildConfig,
    name: str,
    as_json: bool,
    classes: tuple[str, ...],
    out: str,
) -> None:
    """The plan of a dry run: with `as_json`, every source as JSON on stdout; else its summary
    (sources per class and split, the clips it may make) and the first `PLAN_ROWS` sources, so
    that a list of any length prints in time linear in its length."""
    splits = assign_splits(sources, config.test_fraction, config.split_salt)
    if as_json:
        rows = [
            {
                "source_id": s.source_id,
                "class": s.class_name,
                "split": splits[s.source_id],
                "url": s.url,
                "start": s.start,
                "end": s.end,
            }
            for s in sources
        ]
        plan = {"source_list": name, "out": out, "config": config.to_json(), "sources": rows}
        click.echo(json.dumps(plan, indent=1))
        return
    per_class = Counter(s.class_name for s in sources)
    per_split = Counter(splits.values())
    clips = len(sources) * config.clip.max_clips
    console.print(f"Plan: {len(sources):,} sources from {name} -> {out}")
    console.print(
        "per class: " + ", ".join(f"{c} {per_class[c]:,}" for c in classes if per_class[c])
    )
    console.print("per split: " + ", ".join(f"{s} {n:,}" for s, n in sorted(per_split.items())))
    console.print(
        f"up to {config.clip.max_clips} clips of {config.clip.seconds:g} s per source: at most "
        f"{clips:,} clips, {clips * config.clip.seconds / 3600:,.1f} h"
    )
    if config.quiet:
        return
    from rich.table import Table

    shown = sources[:PLAN_ROWS]
    table = Table(title=f"The first {len(shown):,} of {len(sources):,} sources")
    for column in ("source_id", "class", "split", "start", "end", "url"):
        table.add_column(column)
    for s in shown:
        table.add_row(
            s.source_id, s.class_name, splits[s.source_id], _sec(s.start), _sec(s.end), s.url
        )
    console.print(table)
    if len(sources) > len(shown):
        console.print(f"... and {len(sources) - len(shown):,} more: --json lists every source")


def _sec(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
