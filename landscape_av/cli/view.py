"""`landscape-av view`: look at a corpus in the browser, served on 127.0.0.1 or exported as a folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from landscape_av.cli.corpus import Location, _fail, _open, _quiet
from landscape_av.progress import stage_progress
from landscape_av.schema import DEFAULT_OUT

DEFAULT_PORT = 8766


@click.command("view")
@click.argument("folder", type=Location(exists=True), default=DEFAULT_OUT)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(path_type=Path),
    help="Write a static copy of the page (data, thumbnails, previews) into this folder "
    "instead of serving; never inside the corpus.",
)
@click.option(
    "--preview-seconds",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="--export: length of each clip's preview (0: thumbnails only).",
)
@click.option(
    "--preview-height",
    type=click.IntRange(min=16),
    default=180,
    show_default=True,
    help="--export: previews are scaled down to this height.",
)
@click.option(
    "--per-group",
    type=click.IntRange(min=1),
    help="--export: at most this many clips per class and split (default: all).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=min(4, os.cpu_count() or 1),
    show_default=True,
    help="--export: previews encoded at once.",
)
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
@_quiet
def view_command(
    folder: Path | str,
    port: int,
    export_dir: Path | None,
    preview_seconds: float,
    preview_height: int,
    per_group: int | None,
    workers: int,
    verbose: bool,
    quiet: bool,
) -> None:
    """Look at the corpus in FOLDER (default ./landscape-av; or a URL, s3://bucket/prefix) in a
    browser: its card and figures, a page of thumbnails per class and split that play with their
    sound on click, filters, and the failed sources with their reasons. Clips are read where they
    lie in the shards; nothing is written into the corpus. Serves on 127.0.0.1 until Ctrl-C (exit
    130); with --export, writes the page as a folder that opens without a server."""
    from landscape_av.corpus.view import CorpusView, ExportOptions, export_check, export_view

    corpus = _open(folder)
    if export_dir is not None:  # refuse before reading anything
        refused = export_check(corpus, export_dir)
        if refused:
            raise click.UsageError(refused)
    try:
        view = CorpusView(corpus)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    if export_dir is not None:
        options = ExportOptions(preview_seconds, preview_height, per_group, workers)
        with stage_progress(quiet) as progress:
            task = progress.add_task("export", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                count = export_view(view, export_dir, options, on_clip=advance)
            except KeyboardInterrupt:
                click.echo(f"stopped: {export_dir} was left as it was", err=True)
                raise SystemExit(130) from None
            except OSError as err:  # the export's folder could not be written
                raise _fail(err) from err
        if not quiet:
            click.echo(f"wrote {count} clips to {export_dir / 'index.html'}", err=True)
        return
    from landscape_av.corpus.view_server import ViewServer

    try:
        server = ViewServer(view, port, verbose=verbose)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} of 127.0.0.1 is in use: pick another with --port (0: any free port)"
            ) from err
        raise _fail(err) from err
    click.echo(f"Serving {corpus.location} at {server.url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        raise SystemExit(130) from None
    finally:
        server.server_close()
