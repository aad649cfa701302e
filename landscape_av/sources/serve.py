"""A loopback (127.0.0.1) static HTTP server for a folder, run in a background thread.

Used to push local media (the demo sources, test media) through the real download path. Python's
`http.server` ignores Range requests and always sends the whole file, so the mp4 files it serves must
be faststart (moov atom first) for a streaming reader to get at them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEMO_PORT = 8765
"""Fixed port of `landscape-av build --demo`, so that the URLs recorded in its manifests and shards
are the same from run to run."""


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files from `directory`; access lines go to our logger at DEBUG instead of stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("serve %s: " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    """Threaded server that logs a client hanging up early (yt-dlp and ffmpeg often do) at DEBUG
    instead of printing a traceback."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        log.debug("serve %s: client went away", client_address[0], exc_info=True)


@contextlib.contextmanager
def serve_folder(folder: Path, port: int = 0) -> Iterator[str]:
    """Serve `folder` on http://127.0.0.1:<port>/ while the block runs; yields the base URL
    (with a trailing slash). `port=0` picks any free port. Raises OSError (with the port in the
    message) when the port is taken."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot serve {folder}: not a folder")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = _Server((HOST, port), handler)
    except OSError as e:
        hint = "; another server (a second `build --demo`?) may hold it" if port else ""
        raise OSError(e.errno, f"cannot serve {folder} on {HOST}:{port}: {e.strerror}{hint}") from e
    serve = functools.partial(server.serve_forever, poll_interval=0.1)
    thread = threading.Thread(target=serve, name=f"serve:{port}", daemon=True)
    thread.start()
    url = f"http://{HOST}:{server.server_address[1]}/"
    log.debug("serving %s at %s", folder, url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
