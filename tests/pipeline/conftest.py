"""Media, a loopback server, a Ray cluster and an S3 server for the build tests.

`build_media` makes small real media files with ffmpeg, one per situation the pipeline must handle
(good, rotated, too small, no audio, too short, silent, frozen); `media_server` serves them on
127.0.0.1 through a handler that can also answer 500 or cut a body short, so that the real yt-dlp
download path meets real HTTP errors. `ray_cluster` is a real Ray cluster and `s3` a real
S3-compatible server (moto), both on 127.0.0.1, for `--engine ray` and `--out s3://...`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.crash import CRASH_ENV
from landscape_av.sources.source_list import Source, write_source_list

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
    lowres.mp4 (160x90), noaudio.mp4, novideo.mp4 (sound only), short.mp4 (5 s), silent.mp4,
    frozen.mp4 (one still picture), broken.mp4 (not media), damaged.mp4 (good.mp4 with random
    bytes over its middle third: a download damaged in transit)."""
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
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        _NOISE,
        "-t",
        "12",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        str(d / "novideo.mp4"),
    )
    make_video(d / "short.mp4", 5)
    make_video(d / "silent.mp4", 12, audio="anullsrc=sample_rate=44100:channel_layout=stereo")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=480x270", "-frames:v", "1", str(d / "still.png"))
    ffmpeg(
        "-loop", "1", "-framerate", "25", "-i", str(d / "still.png"), "-f", "lavfi", "-i", _NOISE,
        "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-movflags", "+faststart", str(d / "frozen.mp4"),
    )  # fmt: skip
    (d / "broken.mp4").write_bytes(b"this is not a video file\n" * 100)
    damaged = bytearray((d / "good.mp4").read_bytes())
    third = len(damaged) // 3
    damaged[third : 2 * third] = random.Random(0).randbytes(third)
    (d / "damaged.mp4").write_bytes(bytes(damaged))
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


# --- a Ray cluster on 127.0.0.1 -----------------------------------------------------------------
# One `ray start --head` node with 2 CPUs (a second node would only slow a 2-core machine down),
# hermetic against any Ray that runs beside the tests: its own temporary folder, its own free ports
# (the ones Ray would otherwise fix: GCS 6379, client server 10001, dashboard agent 52365), its own
# authentication token in that folder (Ray reads and writes ~/.ray/auth_token, shared by every
# cluster of the user, unless told otherwise), and no RAY_* variable of the caller's environment.
# `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` makes Ray take 127.0.0.1 as the node address, so that it
# listens on loopback only. Every process of the cluster carries a marker in its environment, by
# which the finalizer ends exactly those.

MARKER = "LANDSCAPE_AV_TEST_RAY"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""The environment a Ray process (node or driver) needs to stay on loopback."""
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
"""127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked(tag: str) -> list[int]:
    """Ids of the processes whose environment carries the marker `tag`."""
    needle = f"{MARKER}={tag}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets listening in the processes `pids`."""
    inodes = set()
    for pid in pids:
        with_fd = Path(f"/proc/{pid}/fd")
        try:
            for fd in with_fd.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(fields[1].rsplit(":", 1)[0])
    return found


@dataclass(frozen=True)
class Cluster:
    address: str
    tag: str  # the marker's value in its processes' environment
    variables: dict[str, str]  # what a node or driver of this cluster needs in its environment

    def pids(self) -> set[int]:
        return set(_marked(self.tag))

    @property
    def env(self) -> dict[str, str]:
        """The environment of a driver of this cluster: `clean_env()` and `variables`."""
        return clean_env() | self.variables


def clean_env() -> dict[str, str]:
    """This process's environment without the crash hook and any RAY_* (RAY_ADDRESS, RAY_AUTH_*...)
    that would point a build at, or authenticate it with, a Ray that runs beside the tests."""
    return {k: v for k, v in os.environ.items() if k != CRASH_ENV and not k.startswith("RAY_")}


def ray_variables(temp: Path) -> dict[str, str]:
    """The variables of a node or driver of the cluster whose folder is `temp`: on loopback, with
    the cluster's own token (written there)."""
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return LOOPBACK_ENV | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node Ray cluster (2 CPUs) on 127.0.0.1, of its own (folder, ports, token); every
    process of it is ended afterwards."""
    pytest.importorskip("ray")
    temp = tmp_path_factory.mktemp("ray")
    variables = ray_variables(temp)
    port = _free_port()
    # ray's command through this interpreter: its workers then run the Python (and packages) of
    # the tests, not whichever `ray` is first on PATH
    ray = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    cmd = [*ray, "start", "--head", "--port", str(port), "--num-cpus", "2"]
    cmd += ["--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)]
    for option in ("--ray-client-server-port", "--dashboard-agent-listen-port"):
        cmd += [option, str(_free_port())]
    try:
        proc = subprocess.run(
            cmd,
            env=clean_env() | variables | {MARKER: str(temp)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Cluster(f"127.0.0.1:{port}", str(temp), variables)
        # every socket the cluster listens on is a loopback one
        assert _listening_addresses(_marked(str(temp))) <= LOOPBACK
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked(str(temp)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(2)
        assert not _marked(str(temp))


# --- an S3-compatible server on 127.0.0.1 -------------------------------------------------------

KEY_ID, SECRET = "AKIAlandscapeTEST", "s3cr3t-never-written-7f9c2e"
CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]


class S3:
    """The moto server: its endpoint, the environment that reaches it, a filesystem on it."""

    def __init__(self, endpoint: str, cache: Path) -> None:
        import s3fs

        self.endpoint = endpoint
        self.env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
        self.env |= {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "XDG_CACHE_HOME": str(cache),
        }
        self.options = {"key": KEY_ID, "secret": SECRET, "endpoint_url": endpoint}
        self.fs = s3fs.S3FileSystem(**self.options)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under `prefix` (bucket/path), by name relative to it."""
        self.fs.invalidate_cache()
        return {p[len(prefix) + 1 :]: self.fs.cat_file(p) for p in self.fs.find(prefix)}

    def build(
        self,
        url: str,
        source_list: Path,
        *options: str,
        crash_at: str = "",
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """`landscape-av build` of `source_list` to `url` with `options` (and `env` added to the
        environment); its exit code and stderr."""
        env = self.env | dict(env or {}) | ({CRASH_ENV: crash_at} if crash_at else {})
        cmd = [*CLI, "build", "--source-list", str(source_list), "--out", url, *options]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        return proc.returncode, proc.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """A moto server on 127.0.0.1, stopped afterwards."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(f"http://{host}:{port}", tmp_path_factory.mktemp("cache"))
    finally:
        server.stop()


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the corpus folder `out` but its work folder, by relative POSIX path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }


def write_media_list(path: Path, rows: Iterable[tuple[str, ...]]) -> Path:
    """Write a source list of test media (CC0-1.0): each row is (source_id, url, class),
    (source_id, url, class, split) or (source_id, url, class, split, start), an empty or missing
    split being the build's to assign."""
    sources = [
        Source(
            i,
            url,
            c,
            split=(s[0] if s else "") or None,
            start=float(s[1]) if len(s) > 1 else None,
            license="CC0-1.0",
            attribution="test media",
        )
        for i, url, c, *s in rows
    ]
    return write_source_list(sources, path)
