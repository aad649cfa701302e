"""`landscape-av build`: turn a source manifest into the corpus (see landscape_av.pipeline.build)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import click

from landscape_av.classes import CLASSES, parse_class_selection
from landscape_av.pipeline.build import BuildConfig, build
from landscape_av.progress import console
from landscape_av.schema import DEFAULT_OUT, WORK_DIR
from landscape_av.sources.source_list import ManifestError, Source, read_manifest, select_sources
from landscape_av.sources.split import assign_splits

_DEFAULTS = BuildConfig()
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


def _classes(ctx, param, value: str) -> tuple[str, ...]:
    try:
        return parse_class_selection(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("build")
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Source manifest CSV (default: the shipped Landscape list).",
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
    callback=_classes,
    help="'all' or a comma list of class names.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(DEFAULT_OUT),
    show_default=True,
    help="Corpus folder.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=_DEFAULTS.workers,
    show_default="CPU cores",
    help="Sources clipped at once (each encoder uses one core).",
)
@click.option(
    "--downloads",
    type=click.IntRange(min=1),
    default=_DEFAULTS.downloads,
    show_default=True,
    help="Sources fetched at once, while others are clipped.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many sources in all.")
@click.option("--max-per-class", type=click.IntRange(min=1), help="At most this many per class.")
@click.option(
    "--max-clips",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_clips,
    show_default=True,
    help="Clips per source.",
)
@click.option(
    "--clip-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.clip_seconds,
    show_default=True,
)
@click.option(
    "--size",
    default=f"{_DEFAULTS.width}x{_DEFAULTS.height}",
    show_default=True,
    callback=_size,
    help="Output WIDTHxHEIGHT (scale to cover, centre crop).",
)
@click.option(
    "--min-size",
    default=f"{_DEFAULTS.min_width}x{_DEFAULTS.min_height}",
    show_default=True,
    callback=_size,
    help="Reject sources smaller than this.",
)
@click.option("--fps", type=click.IntRange(min=1), default=_DEFAULTS.fps, show_default=True)
@click.option("--crf", type=click.IntRange(0, 51), default=_DEFAULTS.crf, show_default=True)
@click.option("--preset", default=_DEFAULTS.preset, show_default=True, help="libx264 preset.")
@click.option(
    "--audio-rate", type=click.IntRange(min=8000), default=_DEFAULTS.audio_rate, show_default=True
)
@click.option(
    "--silence-db",
    type=float,
    default=_DEFAULTS.silence_db,
    show_default=True,
    help="Reject sources whose RMS level is below this (dBFS).",
)
@click.option(
    "--frozen-floor",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.frozen_floor,
    show_default=True,
    help="Reject sources whose mean frame difference is below this.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS.test_fraction,
    show_default=True,
    help="Share of sources without a split that go to test.",
)
@click.option(
    "--shard-size", default="1GB", show_default=True, callback=_bytes, help="Largest shard."
)
@click.option(
    "--shard-samples",
    type=click.IntRange(min=1),
    default=_DEFAULTS.shard_max_samples,
    show_default=True,
    help="Most samples per shard.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=_DEFAULTS.retries,
    show_default=True,
    help="Download retries per source.",
)
@click.option("--allow-local", is_flag=True, help="Allow file:// URLs and local paths.")
@click.option(
    "--cookies",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Cookies file for yt-dlp.",
)
@click.option("--keep-downloads", is_flag=True, help="Keep downloaded sources after clipping.")
@click.option("--dry-run", is_flag=True, help="List the plan and stop.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or tables.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def build_command(
    manifest: Path | None,
    demo: bool,
    demo_port: int | None,
    classes: tuple[str, ...],
    out: Path,
    workers: int,
    downloads: int,
    limit: int | None,
    max_per_class: int | None,
    max_clips: int,
    clip_seconds: float,
    size: tuple[int, int],
    min_size: tuple[int, int],
    fps: int,
    crf: int,
    preset: str,
    audio_rate: int,
    silence_db: float,
    frozen_floor: float,
    test_fraction: float,
    shard_size: int,
    shard_samples: int,
    retries: int,
    allow_local: bool,
    cookies: Path | None,
    keep_downloads: bool,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Download, filter, clip and shard the sources of a manifest into a corpus folder."""
    if demo and manifest is not None:
        raise click.UsageError("--demo and --manifest exclude each other")
    if demo_port is not None and not demo:
        raise click.UsageError("--demo-port needs --demo")
    config = BuildConfig(
        out=out,
        workers=workers,
        downloads=downloads,
        clip_seconds=clip_seconds,
        max_clips=max_clips,
        width=size[0],
        height=size[1],
        fps=fps,
        crf=crf,
        preset=preset,
        audio_rate=audio_rate,
        min_width=min_size[0],
        min_height=min_size[1],
        silence_db=silence_db,
        frozen_floor=frozen_floor,
        test_fraction=test_fraction,
        shard_max_bytes=shard_size,
        shard_max_samples=shard_samples,
        retries=retries,
        allow_local=allow_local,
        cookies=cookies,
        keep_downloads=keep_downloads,
        quiet=quiet or as_json,
    )
    with _source_list(manifest, demo, demo_port, out, min_size, quiet or as_json) as (
        sources,
        name,
    ):
        try:
            chosen = select_sources(sources, classes, limit, max_per_class)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        if not chosen:
            raise click.UsageError(f"{name}: no sources of the selected classes")
        if dry_run:
            _print_plan(chosen, config, name, as_json)
            return
        result = build(chosen, config, manifest=name)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=1))


@contextlib.contextmanager
def _source_list(
    manifest: Path | None,
    demo: bool,
    demo_port: int | None,
    out: Path,
    size: tuple[int, int],
    quiet: bool,
) -> Iterator[tuple[list[Source], str]]:
    """(sources, name of the list) for the build; for --demo, the demo sources are made under
    OUT/.work/demo-sources at the minimum size (the low-resolution one at half of it) and served
    on the demo port (fixed by default) while the build runs."""
    if demo:
        from landscape_av.sources.demo import make_demo_sources, write_demo_manifest
        from landscape_av.sources.serve import DEMO_PORT, serve_folder

        folder = out / WORK_DIR / "demo-sources"
        if not quiet:
            console.print(f"Making the demo sources ({size[0]}x{size[1]}) in {folder}")
        demo_sources = make_demo_sources(folder, size=size, quiet=quiet)
        with serve_folder(folder, DEMO_PORT if demo_port is None else demo_port) as url:
            path = write_demo_manifest(demo_sources, url, folder.parent / "demo-sources.csv")
            yield read_manifest(path), "demo"
        return
    if manifest is None:
        from landscape_av.sources.vggsound import default_manifest

        manifest, why = default_manifest(out / WORK_DIR / "source-list", quiet=quiet)
        if not quiet:
            console.print(f"Using {manifest}: {why}")
    try:
        yield read_manifest(manifest), str(manifest)
    except ManifestError as e:
        raise click.ClickException(str(e)) from None


def _print_plan(sources: list[Source], config: BuildConfig, name: str, as_json: bool) -> None:
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
        click.echo(
            json.dumps({"manifest": name, "out": str(config.out), "sources": rows}, indent=1)
        )
        return
    from rich.table import Table

    table = Table(title=f"Plan: {len(sources)} sources from {name} -> {config.out}")
    for column in ("source_id", "class", "split", "start", "end", "url"):
        table.add_column(column)
    for s in sources:
        table.add_row(
            s.source_id, s.class_name, splits[s.source_id], _sec(s.start), _sec(s.end), s.url
        )
    console.print(table)
    per_class = {c: sum(s.class_name == c for s in sources) for c in CLASSES}
    console.print(
        "per class: "
        + ", ".join(f"{c} {n}" for c, n in per_class.items() if n)
        + f"; up to {config.max_clips} clips of {config.clip_seconds:g} s each"
    )


def _sec(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
