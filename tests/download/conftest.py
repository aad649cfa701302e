"""A loopback HTTP server with faulty routes, and a test video whose frames carry their own number.

Routes of `faulty_server` (all on 127.0.0.1):
    /files/<name>         the file from the media folder (a faststart mp4 works as is)
    /status/<code>/<name> always answers HTTP <code>
    /cut/<name>           sends the whole Content-Length, then 40% of the body, then closes
    /short-length/<name>  announces a Content-Length of 40% of the file, then sends all of it
    /cut-file/<name>      a complete response of the file's first 40% (a file cut on the server)
    /hang/<name>          accepts the request and never answers
    /stall/<name>         sends the headers and 40% of the body, then nothing more (stays open)
    /drip/<name>          sends the headers, then the body at 2 KB/s
    /gzip/<name>          says `Content-Encoding: gzip` but sends the file as it is
Every request is counted per path, so tests can check retries and skips, and its Cookie header kept.
"""

from __future__ import annotations

import collections
import functools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from landscape_av.ffmpeg import run_ffmpeg

FPS = 30
SECONDS = 24
WIDTH, HEIGHT = 160, 96
BITS = 10  # frame number in binary: 10 vertical stripes of 16 px, white = 1


def frame_numbers(path: Path) -> list[tuple[float, int]]:
    """(presentation time s, frame number drawn in the picture) of every decoded frame."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray").astype(np.float32)
            stripes = [luma[:, 16 * k + 4 : 16 * k + 12].mean() > 125 for k in range(BITS)]
            out.append(
                (float(frame.pts * frame.time_base), sum(b << k for k, b in enumerate(stripes)))
            )
    return out


@pytest.fixture(scope="session")
def numbered_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24 s faststart H.264/AAC mp4, 30 fps, 2 s GOP, each frame showing its number in binary."""
    path = tmp_path_factory.mktemp("media") / "numbered.mp4"
    lum = "if(bitand(N\\,pow(2\\,floor(X/16)))\\,235\\,16)"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"color=c=gray:s={WIDTH}x{HEIGHT}:r={FPS}:d={SECONDS},geq=lum='{lum}':cb=128:cr=128",
        ]
        + ["-f", "lavfi", "-i", f"sine=f=440:d={SECONDS}:sample_rate=48000"]
        + [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-sc_threshold",
            "0",
            "-crf",
            "18",
        ]
        + ["-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", "-shortest", str(path)]
    )
    return path


@dataclass
class FaultyServer:
    url: str  # base URL with a trailing slash
    hits: collections.Counter = field(default_factory=collections.Counter)
    cookies: collections.defaultdict = field(default_factory=lambda: collections.defaultdict(list))

    def count(self, route: str) -> int:
        return self.hits["/" + route.lstrip("/")]


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, folder: Path, state: FaultyServer, release: threading.Event, **kw):
        self.folder, self.state, self.release = folder, state, release
        super().__init__(*args, **kw)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.state.hits[self.path] += 1
        self.state.cookies[self.path].append(self.headers.get("Cookie", ""))
        kind, _, rest = self.path.lstrip("/").partition("/")
        if kind == "status":
            code, _, _ = rest.partition("/")
            self.send_error(int(code))
        elif kind == "hang":
            self.release.wait(60)
        elif kind == "drip":
            body = (self.folder / rest).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 512):
                if self.release.wait(0.25):
                    return
                self.wfile.write(body[i : i + 512])
                self.wfile.flush()
        elif kind == "gzip":
            body = (self.folder / rest).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif kind in ("files", "cut", "stall", "short-length", "cut-file"):
            file = self.folder / rest
            if not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            if kind == "cut-file":
                kind, body = "files", body[: len(body) * 2 // 5]
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            length = len(body) * 2 // 5 if kind == "short-length" else len(body)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            whole = kind in ("files", "short-length")
            self.wfile.write(body if whole else body[: len(body) * 2 // 5])
            self.close_connection = True
            if kind == "stall":
                self.wfile.flush()
                self.release.wait(60)
        else:
            self.send_error(400)


@pytest.fixture
def faulty_server(numbered_mp4: Path) -> Iterator[FaultyServer]:
    """A server on a free loopback port serving the folder of `numbered_mp4` through faulty routes."""
    release = threading.Event()
    state = FaultyServer(url="")
    handler = functools.partial(_Handler, folder=numbered_mp4.parent, state=state, release=release)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield state
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
