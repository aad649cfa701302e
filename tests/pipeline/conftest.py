"""Media and a loopback server for the build tests.

`build_media` makes small real media files with ffmpeg, one per situation the pipeline must handle
(good, rotated, too small, no audio, too short, silent, frozen); `media_server` serves them on
127.0.0.1 through a handler that can also answer 500 or cut a body short, so that the real yt-dlp
download path meets real HTTP errors.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from landscape_av.ffmpeg import ffmpeg_exe

SMALL = ("--size", "320x180", "--min-size", "320x180")
"""CLI options of the small test format."""

_NOISE = "anoisesrc=color=pink:amplitude=0.3:sample_rate=48000"


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def make_video(
    path: Path,
    seconds: float,
    size: str = "480x270",
    video: str = "testsrc2",
    audio: str | None = _NOISE,
    extra: tuple[str, ...] = (),
) -> Path:
    """A faststart H.264 (+ AAC) mp4 of `seconds` from lavfi sources."""
    inputs = ["-f", "lavfi", "-i", f"{video}=size={size}:rate=25"]
    if audio:
        inputs += ["-f", "lavfi", "-i", audio]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac"] if audio else []
    ffmpeg(*inputs, "-t", str(seconds), *codecs, *extra, "-movflags", "+faststart", str(path))
    return path


@pytest.fixture(scope="session")
def build_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of test sources, by file name: good.mp4 (22 s: two 10 s clips), good2.mp4 (12 s),
    rotated.mp4 (640x360 stored, displayed portrait: red top / blue bottom before rotation),
    lowres.mp4 (160x90), noaudio.mp4, short.mp4 (5 s), silent.mp4, frozen.mp4 (one still
    picture), broken.mp4 (not media)."""
    d = tmp_path_factory.mktemp("build-media")
    make_video(d / "good.mp4", 22)
    make_video(d / "good2.mp4", 12, video="mandelbrot")
    halves = "color=c=red:size=640x180[a];color=c=blue:size=640x180[b];[a][b]vstack"
    ffmpeg(
        "-f", "lavfi", "-i", f"{halves},noise=alls=20:allf=t",
        "-f", "lavfi", "-i", _NOISE, "-t", "12", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", str(d / "halves.mp4"),
    )  # fmt: skip
    ffmpeg(
        "-display_rotation:v:0", "90", "-i", str(d / "halves.mp4"),
        "-c", "copy", "-movflags", "+faststart", str(d / "rotated.mp4"),
    )  # fmt: skip
    make_video(d / "lowres.mp4", 12, size="160x90")
    make_video(d / "noaudio.mp4", 12, audio=None)
    make_video(d / "short.mp4", 5)
    make_video(d / "silent.mp4", 12, audio="anullsrc=sample_rate=44100:channel_layout=stereo")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=480x270", "-frames:v", "1", str(d / "still.png"))
    ffmpeg(
        "-loop", "1", "-framerate", "25", "-i", str(d / "still.png"), "-f", "lavfi", "-i", _NOISE,
        "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-movflags", "+faststart", str(d / "frozen.mp4"),
    )  # fmt: skip
    (d / "broken.mp4").write_bytes(b"this is not a video file\n" * 100)
    return d


class _Handler(SimpleHTTPRequestHandler):
    """Static files, plus `/status/<code>` (that HTTP error) and `/cut/<file>` (headers for the
    whole file, then half of the body and a closed connection)."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        if self.path.startswith("/status/"):
            self.send_error(int(self.path.split("/")[2]))
            return
        if self.path.startswith("/cut/"):
            data = (Path(self.directory) / self.path[len("/cut/") :]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up early (yt-dlp peeks at a URL, then lets go) is no error."""


@pytest.fixture(scope="session")
def media_server(build_media: Path) -> Iterator[str]:
    """Base URL (trailing slash) of `build_media` served on 127.0.0.1."""
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(build_media)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
