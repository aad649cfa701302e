"""The HTTP side of `landscape-av view`: the page and its JSON on 127.0.0.1, members by byte range.

Routes (GET and HEAD; the README documents the JSON for scripts):

    /                     the page (`view_page/index.html`), /static/view.js, /static/view.css
    /api/summary          title, card summary, location, classes, splits, `stats`, figures, problems
    /api/groups           clips per class and split that pass ?class=&split=&q=
    /api/clips            a page of them: ?class=&split=&q=&offset=&limit= (limit <= 500)
    /api/failures         the failures manifest
    /media/KEY.EXT        a member's bytes, read where they lie in the shard; Range -> 206
    /figures/NAME.png     the build's figures;  /card: the dataset card (markdown)

Only 127.0.0.1 is bound, and only requests whose Host names it (or localhost) at this port are
answered, so that a web page elsewhere cannot read the corpus through a DNS name that resolves to
127.0.0.1. Every answer forbids the page anything from another origin (Content-Security-Policy)
and other origins from embedding what it serves.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from landscape_av.corpus.stats import FIGURES
from landscape_av.corpus.view import PAGE_FILES, CorpusView, page_file, render_page

HOST = "127.0.0.1"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; media-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_MEDIA = re.compile(r"^/media/([A-Za-z0-9_-]{1,80})\.([a-z0-9.]{1,16})$")
_FIGURE = re.compile(r"^/figures/([a-z_]{1,40})\.png$")
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Unsatisfiable(ValueError):
    """A Range none of whose bytes the body has (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) of the single `bytes=` range of a `size`-byte body asked for by a Range
    header: `a-b`, `a-` or the suffix `-n`; None (send the whole body) for no header, another
    unit, several ranges or a malformed one. Raises Unsatisfiable where the body has none of it."""
    unit, _, spec = (header or "").partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or not (first + last).isdigit():
        return None  # no or unusable Range (a list of ranges has a comma, so fails isdigit)
    if not first:  # the last `last` bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - int(last)), size
    start, stop = int(first), int(last) + 1 if last else size
    if last and stop <= start:
        return None  # invalid (last before first): ignored
    if start >= size:
        raise Unsatisfiable(header)
    return start, min(stop, size)


@dataclass
class Reply:
    """An answer: status, content type, body (bytes, or chunks of `length` bytes), headers."""

    status: int
    content_type: str
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json(value: Any, status: int = 200) -> Reply:
    body = json.dumps(value, allow_nan=False).encode()
    return Reply(status, "application/json", body, headers={"Cache-Control": "no-store"})


def _text(status: int, message: str) -> Reply:
    return Reply(status, "text/plain; charset=utf-8", f"{message}\n".encode())


class ViewServer(ThreadingHTTPServer):
    """The viewer of `view` on 127.0.0.1:`port` (0: a free port), answering in threads; `url`
    is its address. `verbose` logs each request on stderr."""

    daemon_threads = True  # a browser's open connections do not hold up Ctrl-C

    def __init__(self, view: CorpusView, port: int = 0, verbose: bool = False) -> None:
        self.view, self.verbose = view, verbose
        super().__init__((HOST, port), _Handler)
        self.hosts = {f"{HOST}:{self.server_port}", f"localhost:{self.server_port}"}
        self.page = render_page(view.summary["title"]).encode()
        self.static = {name: page_file(name).read_bytes() for name in PAGE_FILES}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_port}/"

    def answer(self, target: str, headers: Any) -> Reply:
        """The reply to a request for `target` (path and query) with these headers."""
        if headers.get("Host", "").lower() not in self.hosts:
            return _text(403, f"this viewer answers requests for {self.url} only")
        url = urlsplit(target)
        path, query = unquote(url.path), {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path == "/":
            return Reply(
                200, "text/html; charset=utf-8", self.page, headers={"Cache-Control": "no-cache"}
            )
        if path.startswith("/static/") and path[8:] in self.static:
            kind = _STATIC_TYPES[path[path.rindex(".") :]]
            return Reply(200, kind, self.static[path[8:]], headers={"Cache-Control": "no-cache"})
        if path.startswith("/api/"):
            return self._api(path[5:], query)
        media = _MEDIA.match(path)
        if media:
            return self._member(media.group(1), media.group(2), headers)
        figure = _FIGURE.match(path)
        if figure and figure.group(1) in FIGURES:
            png = self.view.corpus.figures_dir / f"{figure.group(1)}.png"
            if png.is_file():
                return Reply(200, "image/png", png.read_bytes())
        if path == "/card" and self.view.corpus.card_path.is_file():
            return Reply(
                200, "text/markdown; charset=utf-8", self.view.corpus.card_path.read_bytes()
            )
        return _text(404, f"{path}: not found")

    def _api(self, name: str, query: dict[str, str]) -> Reply:
        view = self.view
        filters = (query.get("class", ""), query.get("split", ""), query.get("q", ""))
        if name == "summary":
            return _json(view.summary)
        if name == "failures":
            return _json({"failures": view.failures})
        if name == "groups":
            return _json({"groups": view.groups(*filters)})
        if name == "clips":
            try:
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 48))
                if offset < 0 or limit < 0:
                    raise ValueError("negative")
            except ValueError:
                return _json({"error": "offset and limit must be whole numbers >= 0"}, 400)
            return _json(view.page(*filters, offset=offset, limit=limit))
        return _json({"error": f"no endpoint /api/{name}"}, 404)

    def _member(self, key: str, ext: str, headers: Any) -> Reply:
        found = self.view.locate(key, ext)
        if found is None:
            return _text(404, f"no member {key}.{ext} in this corpus")
        common = {"ETag": found.etag, "Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        if headers.get("If-None-Match") == found.etag:
            return Reply(304, found.media_type, headers=common)
        if_range = headers.get("If-Range")
        try:
            wanted = byte_range(headers.get("Range"), found.size)
        except Unsatisfiable:
            return Reply(
                416, found.media_type, headers=common | {"Content-Range": f"bytes */{found.size}"}
            )
        if wanted is None or (if_range is not None and if_range != found.etag):
            return Reply(200, found.media_type, found.read(), found.size, common)
        start, stop = wanted
        common["Content-Range"] = f"bytes {start}-{stop - 1}/{found.size}"
        return Reply(206, found.media_type, found.read(start, stop), stop - start, common)


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"  # keep-alive: a page of thumbnails shares a few connections
    server_version = "landscape-av-view"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        try:
            reply = self.server.answer(self.path, self.headers)
        except Exception as err:  # a bug or an unreadable file: say it, keep serving
            self.log_error("%s: %s: %s", self.path, type(err).__name__, err)
            reply = _text(500, f"{type(err).__name__}: {err}")
        body = reply.body
        length = len(body) if isinstance(body, bytes) else reply.length
        try:
            self.send_response(reply.status)
            for name, value in (SECURITY_HEADERS | reply.headers).items():
                self.send_header(name, value)
            if reply.status != 304:
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(length or 0))
            self.end_headers()
            if send_body and reply.status != 304:
                for chunk in [body] if isinstance(body, bytes) else body:
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the browser dropped it (a seek)
            self.close_connection = True
        except OSError as err:  # the shard could not be read on: the reply is cut short
            self.log_error("%s: %s", self.path, err)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def log_error(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"error: {format % args}\n")
