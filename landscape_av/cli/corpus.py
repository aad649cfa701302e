"""`landscape-av stats | verify | export-frames | push`: inspect, check, reuse and publish a corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from landscape_av.progress import stage_progress
from landscape_av.schema import DEFAULT_OUT, SPLITS

if TYPE_CHECKING:
    from landscape_av.corpus import Corpus


class Location(click.ParamType):
    """A corpus folder (Path; `file://` URLs too) or an fsspec URL of another filesystem (str,
    as given: `s3://bucket/prefix`); with `exists`, a local folder must exist."""

    name = "folder|URL"

    def __init__(self, exists: bool = False) -> None:
        self.exists = exists

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from landscape_av.storage import is_remote, local_path

        if isinstance(value, Path) or not is_remote(value):
            path = local_path(value)
            if path.exists() and not path.is_dir():
                self.fail(f"{path} is a file, not a folder", param, ctx)
            if self.exists and not path.is_dir():
                self.fail(f"folder {str(path)!r} does not exist", param, ctx)
            return path
        return str(value)


_folder = click.argument("folder", type=Location(exists=True), default=DEFAULT_OUT)
_local_folder = click.argument(
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_OUT,
)
_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bars or tables.")


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


def _open(folder: Path | str) -> Corpus:
    """The Corpus of a folder or URL (a URL's small files fetched now: its errors end the command)."""
    from landscape_av.corpus import Corpus

    try:
        return Corpus(folder)
    except OSError as err:  # a URL with no corpus, or its storage's errors (`StorageError`)
        raise _fail(err) from err


@click.command("stats")
@_folder
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option("--no-figures", is_flag=True, help="Do not (re)write the PNG plots in figures/.")
@click.option("--write-card", is_flag=True, help="Also rewrite the dataset card README.md.")
@_quiet
def stats_command(
    folder: Path | str, as_json: bool, no_figures: bool, write_card: bool, quiet: bool
) -> None:
    """Per class and split: sources, clips, hours, rejections by reason; distributions of
    resolution, fps, duration, loudness, motion; shard sizes. Writes the card's plots to
    FOLDER/figures/ (default folder: ./landscape-av). FOLDER may be a URL (s3://bucket/prefix):
    its figures and card are then read, not written."""
    from landscape_av.corpus import card
    from landscape_av.corpus.stats import corpus_stats, figure_paths, stats_tables, write_figures

    corpus = _open(folder)
    if corpus.is_remote and write_card:
        raise click.UsageError("--write-card rewrites a local corpus folder, not one at a URL")
    no_figures = no_figures or corpus.is_remote
    try:
        stats = corpus_stats(corpus)
        if write_card:
            card.write_card(corpus)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    if write_card:
        figures = figure_paths(corpus)
    else:
        figures = {} if no_figures else write_figures(corpus, stats)
    if as_json:
        click.echo(json.dumps(stats | {"figures": {k: str(v) for k, v in figures.items()}}))
        return
    console = Console(quiet=quiet)
    for table in stats_tables(stats):
        console.print(table)
    for path in figures.values():
        console.print(f"wrote {path}")


@click.command("verify")
@_folder
@click.option("--no-decode", is_flag=True, help="Hashes and structure only (fast), no decoding.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=min(4, os.cpu_count() or 1),
    show_default=True,
    help="Shards checked in parallel.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
@_quiet
def verify_command(
    folder: Path | str, no_decode: bool, workers: int, as_json: bool, quiet: bool
) -> None:
    """Re-hash every shard and member against the manifests and decode every sample, checking
    its frames, size, rate and samples. Names each problem by shard, key and member; exits 1 on
    any problem. A corpus is regular files inside its folder: a symbolic link, FIFO or device in
    it is a problem, and then nothing is read."""
    from landscape_av.corpus.verify import irregular_entries, problems_json, verify_corpus

    corpus = _open(folder)
    try:  # (verify_corpus names an unreadable manifest, or the links it does not follow)
        total = (
            None if irregular_entries(corpus) else int(corpus.manifest("shards")["samples"].sum())
        )
    except (OSError, ValueError):
        total = None
    with stage_progress(quiet or as_json) as progress:
        task = progress.add_task("verify", total=total)
        problems = verify_corpus(
            corpus,
            decode=not no_decode,
            workers=workers,
            on_shard=lambda _name, n: progress.advance(task, n),
        )
    if not corpus.is_remote:
        warn_cache(corpus)
    if as_json:
        click.echo(json.dumps(problems_json(problems)))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        if not quiet:
            verdict = f"{len(problems)} problem(s)" if problems else "OK"
            click.echo(f"{folder}: {total or 0} samples checked: {verdict}", err=True)
    if problems:
        raise SystemExit(1)


def warn_cache(folder: Path) -> None:
    """Warn (stderr) of a dataset of the folder's name in the `datasets` cache that is not it."""
    from landscape_av.corpus.hub import cache_warning

    line = cache_warning(folder)
    if line:
        click.echo(f"warning: {line}", err=True)


@click.command("export-frames")
@_folder
@click.option(
    "--out",
    "dest",
    type=click.Path(path_type=Path),
    required=True,
    help="A new folder, or a .zip file (StyleGAN3 dataset_tool layout).",
)
@click.option("--resolution", type=int, default=256, show_default=True, help="Square side, 2^n.")
@click.option("--frames-per-clip", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True)
@click.option("--max-images", type=click.IntRange(min=1), help="Stop after this many images.")
@_quiet
def export_frames_command(
    folder: Path | str,
    dest: Path,
    resolution: int,
    frames_per_clip: int,
    split: str,
    max_images: int | None,
    quiet: bool,
) -> None:
    """Frames sampled evenly from each clip of a split, centre-cropped and Lanczos-resized, as
    the image dataset StyleGAN3's train.py reads (class labels in dataset.json, for --cond)."""
    from landscape_av.corpus.export_frames import ExportOptions, export_frames

    corpus = _open(folder)
    try:
        opts = ExportOptions(resolution, frames_per_clip, split, max_images)
        clips = corpus.manifest("clips")
        total = int((clips["split"] == split).sum()) * frames_per_clip
        total = min(total, max_images) if max_images else total
        with stage_progress(quiet) as progress:
            task = progress.add_task("frames", total=total)
            count = export_frames(
                corpus, dest, opts, on_image=lambda n: progress.update(task, completed=n)
            )
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    if not quiet:
        click.echo(f"wrote {count} images of {resolution}x{resolution} to {dest}", err=True)


@click.command("push")
@_local_folder
@click.option(
    "--repo", "repo_id", required=True, help="Hub dataset repo id, e.g. user/landscape-av."
)
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--revision", help="Branch to push to (default: main).")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN or the login).")
@click.option("--endpoint", envvar="HF_ENDPOINT", help="Hub URL (default: huggingface.co).")
@click.option("--dry-run", is_flag=True, help="Check the folder and list what would be sent.")
def push_command(
    folder: Path,
    repo_id: str,
    private: bool,
    revision: str | None,
    token: str | None,
    endpoint: str | None,
    dry_run: bool,
) -> None:
    """Publish FOLDER as a Hub dataset repo after checking it (hashes and card); .work/ stays
    local. Afterwards `load_dataset(REPO)` works like loading the folder."""
    from landscape_av.corpus import Corpus
    from landscape_av.corpus.hub import check_before_push, push, upload_files

    corpus = Corpus(folder)
    try:
        if dry_run:
            check_before_push(corpus)
            for name in upload_files(corpus):
                click.echo(name)
            return
        url = push(
            corpus, repo_id, private=private, token=token, endpoint=endpoint, revision=revision
        )
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    click.echo(url)


COMMANDS = (stats_command, verify_command, export_frames_command, push_command)
