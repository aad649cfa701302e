"""The build's log: the toolkit's log lines (yt-dlp's and ffmpeg's messages among them) go to
`OUT/.work/build.log` (`build_log`), and to the terminal too with `--verbose`; a Ray task collects
its lines (`captured_log`) for the driver to write there."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

LOG_FILE = "build.log"
LOGGER = "landscape_av"
"""The toolkit's logger, whose lines the build log takes."""


class _LogFile(logging.FileHandler):
    """The build log: best effort, so a full disk drops its lines instead of printing tracebacks
    (the build itself then stops with one line)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


class _Lines(logging.Handler):
    """Collects (logger, level, message) of each line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.levelno, record.getMessage()))


@contextlib.contextmanager
def _routed(handlers: Sequence[logging.Handler]) -> Iterator[None]:
    """The toolkit's log lines of every level go to `handlers` only, in the block."""
    logger = logging.getLogger(LOGGER)
    for handler in handlers:
        logger.addHandler(handler)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.level, logger.propagate = saved


@contextlib.contextmanager
def build_log(path: Path, verbose: bool) -> Iterator[Path]:
    """Send the toolkit's log to the file `path`, and to the terminal only when `verbose`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [_LogFile(path, encoding="utf-8")]
    if verbose:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    with _routed(handlers):
        yield path


@contextlib.contextmanager
def captured_log() -> Iterator[list[tuple[str, int, str]]]:
    """The toolkit's log lines in the block, as (logger, level, message), collected for the
    driver's build log."""
    handler = _Lines()
    with _routed([handler]):
        yield handler.lines
