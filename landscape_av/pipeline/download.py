"""Stage 1 of the build: fetch the needed section of one source with yt-dlp.

`download(source, dest_dir, options, seconds, min_height)` fetches, with the yt-dlp Python API, the
best video of at least `min_height` merged with the best audio (falling back to the best single muxed format, then to
whatever is best: a plain http URL goes through yt-dlp's generic extractor, which knows nothing of the
file's size or streams, so no format metadata is trusted and the pipeline probes the file afterwards).
Only the section the clips need is fetched: from the row's `start`, `seconds` long (clips x clip
length), bounded by the row's `end`.

Where the cut lands (found by experiment with yt-dlp 2026.10 and ffmpeg 9 over http; the tests pin
it with a video whose frames show their own number): yt-dlp hands a section to ffmpeg as
`-ss START -t LENGTH -i URL -c copy`, and ffmpeg shifts every timestamp by -START, so media time t in
the file is source time START + t: `offset == START`. Stream copy cannot cut between keyframes. Into
mp4, the packets from the keyframe before START are kept with negative timestamps behind an edit
list, and decoders (ffmpeg, PyAV) start exactly at media time 0 with the frame at START. Into webm/mkv
the copy can begin at a later keyframe (in our webm experiment the first frame sat at media time
2.5 s, still showing source time START + 2.5). So read the streams' start times, never assume content
at media time 0. Merged formats are written as mp4. Local files (`allow_local`) get the same cut from
ffmpeg directly, as yt-dlp cannot cut sections of file:// URLs.

Each attempt runs yt-dlp in a worker process in its own session (so its ffmpeg goes with it),
killed at the source's deadline: a server that hangs cannot hang the build; the worker also dies
when its parent is killed. Workers are long-lived (`_Workers`): one serves attempt after attempt,
with one `YoutubeDL` for all the jobs of a build's settings (`_Session`), so a source pays neither
a Python start, nor yt-dlp's import and its compiling of the extractors' URL patterns, nor the
making of a `YoutubeDL` (together 0.7 to 0.8 CPU-s, paid once by a worker, where the rest of a
download costs about 0.08: bench/source_cost.py); a download that finds every worker busy waits a
few seconds for one (`SPAWN_PATIENCE`) before it starts another, so that sections that come fast
share one worker. A
worker that is killed or dies takes only its attempt with it, and the next attempt gets a new
worker. ffmpeg exits 0 when its input breaks off mid-section, so its stderr is checked for that
too. Failures are retried with exponential backoff when they may pass
(HTTP 5xx/408/429, a dropped connection, a socket timeout). The function is safe to call from a
pool: each source works in its own folder `dest_dir/.partial/<source_id>/`, and the finished file
is moved into `dest_dir` with an atomic rename, so a partial download never looks done.

Finished sources are recorded in `dest_dir/<source_id>.download.json` (written atomically after the
media file is in place) instead of yt-dlp's `download_archive`: the archive keys on yt-dlp's video id
(for plain URLs, the file name, which different sources can share), records neither the section nor
the file it wrote, and is one file appended by every worker. The per-source record is keyed by our
source id, checked against the URL and section on rerun, and owned by one worker. A rerun after a
kill -9 finds no record and restarts that source cleanly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from landscape_av import processes
from landscape_av.ffmpeg import FFmpegError, ffmpeg_exe, run_ffmpeg
from landscape_av.files import atomic_write
from landscape_av.pipeline.settings import setting
from landscape_av.sources.source_list import Source, url_problem

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
STDERR_FILE = "stderr.log"  # an attempt's stderr (yt-dlp's and ffmpeg's), in its folder
RECORD_SUFFIX = ".download.json"
RETRYABLE_REASONS = frozenset({"connection", "timeout", "http_408", "http_429", "blocked"})
LOST_REASONS = frozenset({"private", "removed"})
"""Reasons that say the video is gone from its site for good (YouTube's private, removed and
terminated-account videos; HTTP 410 Gone and 451): the source is `lost`, not a failure."""
_LEVEL_PREFIX = "@@ytdlp "
RATE_GRACE = 5.0
"""Seconds an attempt runs before its average rate is held against `min_rate`."""


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch a source. `timeout` bounds one source's whole download (all attempts, in s);
    `socket_timeout` bounds each network wait; `min_rate` (bytes/s, 0: none) ends an attempt that
    fetches slower than that on average from `RATE_GRACE` s on; `rate_limit` (yt-dlp syntax, e.g. "4M") applies to
    yt-dlp's own http downloader, not to ffmpeg's section downloads."""

    retries: int = setting(3, low=0, help="Download retries per source.")
    backoff: float = setting(1.0, recorded=False)  # s before the first retry, doubled each time
    timeout: float = setting(
        900.0,
        name="download_timeout",
        low=0,
        low_open=True,
        help="Seconds one source's download may take, all attempts together.",
    )
    socket_timeout: float = setting(
        30.0, low=0, low_open=True, help="Seconds one network wait may take."
    )
    allow_local: bool = setting(False, help="Allow file:// URLs and local paths.")
    cookies: Path | None = setting(
        None, path="file", recorded=False, help="Cookies file for yt-dlp."
    )
    rate_limit: str | None = setting(
        None, help="Rate limit of yt-dlp's own http downloads (yt-dlp syntax, e.g. 4M)."
    )
    min_rate: int = setting(
        0,
        kind="bytes",
        recorded=False,
        show="0: none",
        help=f"Give up an attempt that fetched less than this many bytes/s on average in its first "
        f"{RATE_GRACE:g} s or any time after (e.g. 20K).",
    )


@dataclass(frozen=True)
class Downloaded:
    """A fetched section: media time t in `path` is source time `offset + t` (see module doc)."""

    source_id: str
    path: Path
    offset: float  # source time (s) at media time 0 of `path`


class DownloadError(Exception):
    """A source could not be fetched. `reason` is a short machine code ("http_404", "http_500",
    "connection", "truncated" (a body shorter than announced, or a media file that ends before
    its own index says: cut short on the server), "decode_error" (a file its demuxer cannot read
    all of: damaged), "bad_encoding" (a body that its
    Content-Encoding cannot decode), "timeout", "too_slow",
    "unsupported_url", "local_not_allowed", "not_found", "not_a_file", "invalid_media",
    "no_format", "private", "removed" (`LOST_REASONS`: the video is gone), "blocked" (the site
    asks to prove the client is no bot, or limits the rate: a transient network failure),
    "unavailable" (another refusal: age or region restricted, members only), "error"); str(e) is
    a human message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return (
            self.reason in RETRYABLE_REASONS or re.fullmatch(r"http_5\d\d", self.reason) is not None
        )

    @property
    def lost(self) -> bool:
        """Whether the video is gone from its site for good (`LOST_REASONS`)."""
        return self.reason in LOST_REASONS


def section(source: Source, seconds: float) -> tuple[float, float]:
    """(start, end) in source seconds of what the clips need: `seconds` from the row's start,
    bounded by its end."""
    start = float(source.start or 0.0)
    end = start + seconds
    if source.end is not None:
        end = min(end, source.end)
    if end <= start:
        raise DownloadError("bad_section", f"{_where(source)}: end {source.end} <= start {start}")
    return start, end


def download(
    source: Source,
    dest_dir: Path,
    options: DownloadOptions,
    seconds: float,
    min_height: int = 0,
    give_up: Callable[[DownloadError], bool] | None = None,
) -> Downloaded:
    """Fetch `seconds` of `source` from its start (the clips' section) into `dest_dir`, in a format
    of at least `min_height` lines where there is one; return where it landed. A failed attempt
    that may pass is retried unless `give_up(error)` says otherwise.

    Skips the network when `dest_dir` already holds a finished download of the same URL and section.
    Raises DownloadError (with a `reason` code) when the source cannot be fetched.
    """
    dest_dir = Path(dest_dir)
    start, end = section(source, seconds)
    url = _checked_url(source, options)
    record_path = dest_dir / f"{source.source_id}{RECORD_SUFFIX}"
    done = _read_record(record_path, url, start, end)
    if done is not None:
        log.debug("%s: already downloaded (%s)", source.source_id, done.path.name)
        return done
    record_path.unlink(missing_ok=True)
    for stale in dest_dir.glob(f"{source.source_id}.*"):  # ids have no dots: this source's files
        stale.unlink()

    job = {
        "url": url,
        "source_id": source.source_id,
        "start": start,
        "end": end,
        "format": format_selector(min_height),
        "socket_timeout": options.socket_timeout,
        "cookies": str(Path(options.cookies).resolve()) if options.cookies else None,
        "rate_limit": options.rate_limit,
        "allow_local": options.allow_local,
        "min_rate": options.min_rate,
        "ffmpeg": ffmpeg_exe(),
    }
    workdir = dest_dir / PARTIAL_DIR / source.source_id
    fetch = _cut_local if url.startswith("file:") else _attempt
    deadline = time.monotonic() + options.timeout
    for attempt in range(options.retries + 1):
        try:
            media = fetch(job, workdir, deadline - time.monotonic())
            break
        except DownloadError as e:
            tries = f"attempt {attempt + 1} of {options.retries + 1}"
            delay = options.backoff * 2**attempt
            if (
                not e.retryable
                or attempt == options.retries
                or time.monotonic() + delay >= deadline
                or (give_up is not None and give_up(e))
            ):
                shutil.rmtree(workdir, ignore_errors=True)
                raise DownloadError(e.reason, f"{_where(source)}: {url}: {e} ({tries})") from None
            log.info("%s: %s (%s); retrying in %.1f s", source.source_id, e, tries, delay)
            processes.wait(delay)

    final = dest_dir / f"{source.source_id}{media.suffix}"
    os.replace(media, final)
    shutil.rmtree(workdir, ignore_errors=True)
    record = {"source_id": source.source_id, "url": url, "start": start, "end": end}
    record |= {"file": final.name, "bytes": final.stat().st_size, "offset": start}
    atomic_write(record_path, json.dumps(record, indent=1) + "\n")
    return Downloaded(source.source_id, final, start)


def format_selector(min_height: int) -> str:
    """yt-dlp format: best video >= min_height + best audio, else a muxed one >= min_height, else
    the best there is (the filter rejects what is too small, with a reason)."""
    h = int(min_height)
    return f"bv*[height>={h}]+ba/b[height>={h}]/bv*+ba/b"


def _where(source: Source) -> str:
    """The source and its line in the source list (not the list's path: the message goes into
    the corpus's failures manifest, which names no path of the building machine)."""
    at = f" (line {source.line})" if source.line else ""
    return f"source {source.source_id}{at}"


def _checked_url(source: Source, options: DownloadOptions) -> str:
    """The URL to hand yt-dlp: http(s) as is; file:// URLs and local paths (with allow_local) as
    the file:// URL of an existing regular file (`url_problem` is the rule)."""
    url = source.url.strip()
    problem = url_problem(url, options.allow_local)
    if problem is not None:
        raise DownloadError(problem[0], f"{_where(source)}: {problem[1]}")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return url
    path = Path(url2pathname(urlsplit(url).path)) if scheme == "file" else Path(url).expanduser()
    if not path.exists():
        raise DownloadError("not_found", f"{_where(source)}: local file {path} does not exist")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "a device, pipe or socket"
        raise DownloadError(
            "not_a_file", f"{_where(source)}: {path} is {kind}, not a regular media file"
        )
    return path.resolve().as_uri()


def _read_record(path: Path, url: str, start: float, end: float) -> Downloaded | None:
    try:
        record = json.loads(path.read_text())
        media = path.parent / record["file"]
        same = (record["url"], record["start"], record["end"]) == (url, start, end)
        if same and media.stat().st_size == record["bytes"]:
            return Downloaded(record["source_id"], media, float(record["offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _cut_local(job: dict, workdir: Path, time_left: float) -> Path:
    """A local file (allow_local): yt-dlp cannot cut sections of file:// URLs, so make the cut it
    would make, `-ss START -t LENGTH -i FILE -c copy`, with ffmpeg directly (same `offset`)."""
    path = Path(url2pathname(urlsplit(job["url"]).path))
    ext = _LOCAL_EXT.get(path.suffix.lower(), ".mkv")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    out = workdir / f"{job['source_id']}{ext}"
    seek = ["-ss", str(job["start"])] if job["start"] else []
    try:
        length = ["-t", str(job["end"] - job["start"])]
        args = [*seek, *length, "-i", path, "-c", "copy", out]
        reported = run_ffmpeg(args, timeout=max(time_left, 0.1)).strip().splitlines()
    except FFmpegError as e:
        raise DownloadError(_ffmpeg_reason(str(e).splitlines()), str(e)) from None
    if reported:  # errors only (-loglevel error): as in `_attempt`, a damaged file
        raise DownloadError("decode_error", f"the file is damaged: {' | '.join(reported[:3])}")
    return out


_LOCAL_EXT = {".mp4": ".mp4", ".m4v": ".mp4", ".mov": ".mp4", ".webm": ".webm", ".mkv": ".mkv"}


# --- one attempt in a long-lived worker process -------------------------------------------------


def _attempt(job: dict, workdir: Path, time_left: float) -> Path:
    """Run one yt-dlp attempt in a worker (`_Workers`) inside a fresh `workdir`; return the media
    file. A worker that overruns the attempt is killed with its ffmpeg; one that dies fails only
    this attempt; either way the next attempt gets a new worker."""
    if time_left <= 0:
        raise DownloadError("timeout", "no time left for another attempt")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / STDERR_FILE).touch()  # the worker appends to it
    asked = time.monotonic()
    worker = _WORKERS.take(workdir / STDERR_FILE, min(SPAWN_PATIENCE, time_left / 2))
    time_left -= time.monotonic() - asked
    try:
        # the worker's own working folder is not this process's: it gets absolute paths only
        job = job | {"workdir": str(workdir.resolve())}
        reply = _wait(worker, job, workdir, time_left, job["min_rate"])
    finally:
        _WORKERS.give_back(worker)  # ended instead unless it finished the job and lives
    if processes.stopping():
        raise processes.Stopped("the build is stopping")
    stderr = (workdir / STDERR_FILE).read_text(errors="replace")
    ffmpeg_lines = _relay(stderr)
    if isinstance(reply, DownloadError):
        raise reply
    if reply is None:
        message = f"yt-dlp worker died (exit {worker.proc.returncode}): {_tail(stderr)}"
        raise DownloadError("error", message)
    if not reply["ok"]:
        reason, message = reply["reason"], reply["message"]
        if reason == "ffmpeg":
            reason = _ffmpeg_reason(ffmpeg_lines)
            message = f"{message}: {' | '.join(ffmpeg_lines[-3:])}"
        raise DownloadError(reason, message)
    if _BROKE_OFF.search("\n".join(ffmpeg_lines)):  # ffmpeg exits 0 when its input breaks off
        reason = _ffmpeg_reason(ffmpeg_lines)
        reason = reason if reason in ("timeout", "truncated") else "connection"
        raise DownloadError(reason, f"the input broke off: {' | '.join(ffmpeg_lines[-3:])}")
    if damage := [line for line in ffmpeg_lines if _damage(line)]:
        # the copy steps over what its demuxer cannot read and exits 0: a damaged file, whose
        # copy would come out clean but short of what the damage took
        raise DownloadError("decode_error", f"the file is damaged: {' | '.join(damage[:3])}")
    media = Path(reply["path"])
    if not media.is_file() or media.stat().st_size == 0:
        raise DownloadError("invalid_media", "yt-dlp reported success but wrote no data")
    return media


def _wait(
    worker: _Worker, job: dict, workdir: Path, time_left: float, min_rate: int
) -> dict | DownloadError | None:
    """Hand the worker its job and wait for its reply (None when it died first). It is killed,
    with the error to return, when it runs out of `time_left`, when from `RATE_GRACE` s on it has
    fetched less than `min_rate` bytes/s on average, or when its stderr shows a fatal ffmpeg error
    that ffmpeg itself would sit on until a timeout (`_STUCK`)."""
    began = time.monotonic()
    end = began + time_left
    if not worker.send(job):
        return None
    while True:
        got, reply = worker.reply(max(0.01, min(1.0, end - time.monotonic())))
        if got:
            return reply
        now = time.monotonic()
        rate = _bytes_in(workdir) / (now - began)
        stuck = _stuck(workdir / STDERR_FILE)
        if stuck or now >= end or (min_rate and now - began >= RATE_GRACE and rate < min_rate):
            worker.end()
            if stuck:
                return stuck
            if now >= end:
                stderr = (workdir / STDERR_FILE).read_text(errors="replace")
                return DownloadError(
                    "timeout", f"no result within the time limit ({_tail(stderr)})"
                )
            why = f"{rate:,.0f} bytes/s in {now - began:.0f} s, below --min-rate {min_rate:,}"
            return DownloadError("too_slow", why)


WORKER_IDLE = 300.0
"""Seconds a worker waits for its next job before it exits (this process reuses it only within
`WORKER_IDLE - 60` s of its last reply, so never one about to exit)."""
JOBS_PER_WORKER = 500
"""Jobs after which a worker is replaced by a fresh one (whatever yt-dlp keeps grows no further)."""
SPAWN_PATIENCE = 5.0
"""Seconds a download waits for a busy worker to come free before it starts one more. A worker
costs 0.7 to 0.8 CPU-s to start (a Python, the imports, its `YoutubeDL`, whose first extraction
compiles every extractor's URL pattern: bench/source_cost.py), so where sections come faster than
this (short sources on a fast link) one worker fetches them all, and where they come slower the
next worker starts this much later, once."""


class _Worker:
    """One worker process (`_worker_main`): a job as one json line on its stdin, its reply as one
    json line on its stdout. It runs in its own process group with its ffmpeg, which it kills when
    this process dies (`_die_with_parent`)."""

    def __init__(self, stderr: Path) -> None:
        """Start a worker whose stderr, until its first job, is `stderr` (the first job's), so
        that whatever stops it from starting is in that job's messages."""
        cmd = [
            sys.executable,
            "-c",
            "from landscape_av.pipeline.download import _worker_main; _worker_main()",
        ]
        package_root = str(Path(__file__).resolve().parents[2])  # this code, installed or not
        path = os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))
        with open(stderr, "ab") as log:  # each job's own stderr is then its folder's
            self.proc = processes.start(
                cmd,
                death_signal=signal.SIGTERM,  # the worker then kills its group, ffmpeg included
                cwd="/",  # holds no folder; each job runs in its own work folder
                env=os.environ | {"PYTHONPATH": path},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.jobs = 0
        self.idle_since = time.monotonic()
        self.busy = False
        self.buffer = b""

    def reusable(self) -> bool:
        """Alive, idle for well under `WORKER_IDLE` (so not about to exit), not worn out."""
        fresh = time.monotonic() - self.idle_since < WORKER_IDLE - 60
        return not self.busy and fresh and self.jobs < JOBS_PER_WORKER and self.proc.poll() is None

    def send(self, job: dict) -> bool:
        """Hand the worker a job; False when it is gone (it is ended)."""
        self.busy, self.jobs = True, self.jobs + 1
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job | {"env": dict(os.environ)}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            self.end()
            return False
        return True

    def reply(self, timeout: float) -> tuple[bool, dict | None]:
        """(True, its reply) once it has replied, (True, None) when it died first (it is ended),
        (False, None) when neither happened within `timeout` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return False, None
            data = os.read(fd, 1 << 16)
            if not data:
                self.end()
                return True, None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.busy, self.idle_since = False, time.monotonic()
        return True, json.loads(line)

    def end(self) -> None:
        """Kill the worker's group (the worker and its ffmpeg) unless it has exited; reap it."""
        self.busy = True  # never handed out again
        processes.end(self.proc)


class _Workers:
    """This process's download workers: a job takes an idle one, else waits a while for a busy one
    (`SPAWN_PATIENCE`), else starts a new one, and gives it back when it finished its job; a
    worker that overran or died was ended and is dropped. Shared by every build and thread of the
    process (a Ray worker process keeps them from task to task)."""

    def __init__(self) -> None:
        self.idle: list[_Worker] = []
        self.busy = 0  # workers out on a job or starting
        self.changed = threading.Condition()

    def take(self, stderr: Path, patience: float = 0.0) -> _Worker:
        """An idle worker, one that comes free within `patience` seconds while others are busy,
        else a new one whose start-up messages go to `stderr`."""
        until = time.monotonic() + patience
        with self.changed:
            while True:
                while self.idle:
                    worker = self.idle.pop()
                    if worker.reusable():
                        worker.busy = True
                        self.busy += 1
                        return worker
                    worker.end()
                left = until - time.monotonic()
                if not self.busy or left <= 0:
                    break
                self.changed.wait(left)  # a stop ends the busy ones, which come back at once
            self.busy += 1
        try:
            return _Worker(stderr)
        except BaseException:
            self._returned(None)
            raise

    def give_back(self, worker: _Worker) -> None:
        if worker.busy:  # it did not finish its job: killed, died, or left mid-job by a Ctrl-C
            worker.end()
            self._returned(None)
        else:
            self._returned(worker)

    def _returned(self, worker: _Worker | None) -> None:
        """A job's worker is back: idle (`worker`) or gone (None); a waiting job may go on."""
        with self.changed:
            self.busy -= 1
            if worker is not None:
                self.idle.append(worker)
            self.changed.notify()

    def close(self) -> None:
        """End the idle workers (busy ones are ended when they come back, if closed again)."""
        with self.changed:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.end()


_WORKERS = _Workers()


def close_workers() -> None:
    """End this process's idle download workers now (idle ones also exit by themselves after
    `WORKER_IDLE` s, and every one with this process)."""
    _WORKERS.close()


_STUCK = {"bad_encoding": re.compile(r"inflate return value: -?\d+.*|unknown compression method")}
"""ffmpeg errors after which its HTTP input waits for a timeout instead of failing, by reason."""


def _stuck(stderr_file: Path) -> DownloadError | None:
    """The error of the first `_STUCK` line in the attempt's stderr so far, if any."""
    text = stderr_file.read_text(errors="replace")
    for reason, pattern in _STUCK.items():
        if m := pattern.search(text):
            return DownloadError(reason, f"the body does not match its Content-Encoding: {m[0]}")
    return None


def _bytes_in(folder: Path) -> int:
    total = 0
    for f in folder.iterdir():
        with contextlib.suppress(OSError):
            total += f.stat().st_size if f.is_file() and f.name != STDERR_FILE else 0
    return total


_BROKE_OFF = re.compile(r"Error during demuxing|partial file|Stream ends prematurely")
_DAMAGE = re.compile(r"^\[in#\d+/[^]]*\] \[error\]")
"""An error of an input's demuxer in the section copy's stderr (`-loglevel level+warning`)."""
_RESYNC = re.compile(r"Unknown element \w+ at pos\. .* considered as invalid data")
"""The Matroska demuxer finding its feet after a seek that did not land on an element: a server
that ignores Range requests (Python's http.server does) sends the file from its start. Damage
gives other errors (an invalid track number, an element longer than its parent, a bad EBML
length), so this one alone is not taken for it."""


def _damage(line: str) -> bool:
    """Whether a line of the section copy's stderr says that the file is damaged."""
    return _DAMAGE.search(line) is not None and _RESYNC.search(line) is None


def _ffmpeg_reason(lines: list[str]) -> str:
    """Reason code from the stderr of a failed ffmpeg section download."""
    text = "\n".join(lines)
    if m := re.search(r"Server returned (\d{3})", text):
        return f"http_{m.group(1)}"
    if m := re.search(r"HTTP error (\d{3})", text):
        return f"http_{m.group(1)}"
    if re.search(r"timed out", text, re.IGNORECASE):
        return "timeout"
    if "Stream ends prematurely" in text:  # a body shorter than its Content-Length
        return "truncated"
    if re.search(r"Connection (refused|reset)", text):
        return "connection"
    # the body ended (as announced) before the media did: a file cut short on the server, or a
    # Content-Length shorter than the file; it would come back the same, so it is no network error
    if "partial file" in text:
        return "truncated"
    if re.search(r"I/O error|Input/output error", text):
        return "connection"
    if re.search(
        r"Invalid data|moov atom not found|could not find codec|EBML", text, re.IGNORECASE
    ):
        return "invalid_media"
    if "No such file" in text:
        return "not_found"
    return "error"


def _relay(stderr: str) -> list[str]:
    """Log an attempt's stderr (our tagged yt-dlp lines at their level, ffmpeg's at debug); return
    ffmpeg's lines."""
    ffmpeg_lines = []
    for line in stderr.splitlines():
        if line.startswith(_LEVEL_PREFIX):
            level, _, message = line[len(_LEVEL_PREFIX) :].partition(" ")
            log.log(getattr(logging, level, logging.DEBUG), "yt-dlp: %s", message)
        elif line.strip():
            ffmpeg_lines.append(line.strip())
            log.debug("ffmpeg: %s", line.strip())
    return ffmpeg_lines


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "no output"


class _WorkerLogger:
    """yt-dlp logger of a worker: tagged lines on stderr for the parent to relay. yt-dlp's
    progress and [info] chatter is debug; its warnings stay warnings; errors come back as the
    result, so they are logged at debug."""

    def _emit(self, level: str, message: str) -> None:
        text = " ".join(message.split())
        sys.stderr.write(f"{_LEVEL_PREFIX}{level} {text}\n")
        sys.stderr.flush()

    def debug(self, message: str) -> None:
        self._emit("DEBUG", message)

    def info(self, message: str) -> None:
        self._emit("DEBUG", message)

    def warning(self, message: str) -> None:
        self._emit("WARNING", message)

    def error(self, message: str) -> None:
        self._emit("DEBUG", message)


def _worker_main() -> None:
    """Entry point of a worker process (`_Worker`): jobs one by one until its stdin closes or none
    comes for `WORKER_IDLE` s. Each runs in its job's work folder with its stderr (and its
    ffmpeg's) in `STDERR_FILE` there, in the environment of the process that sent it."""
    replies = os.fdopen(os.dup(1), "w")  # not inherited by ffmpeg
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray output (yt-dlp's, ffmpeg's) never mixes with the replies
    _die_with_parent()
    while select.select([sys.stdin], [], [], WORKER_IDLE)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        job = json.loads(line)
        os.environ.clear()
        os.environ.update(job["env"])
        try:
            os.chdir(job["workdir"])
            log = os.open(STDERR_FILE, os.O_WRONLY | os.O_APPEND)
            os.dup2(log, 2)
            os.close(log)
            result = {"ok": True, "path": str(_run_ytdlp(job))}
        except DownloadError as e:
            result = {"ok": False, "reason": e.reason, "message": str(e)}
        except Exception as e:  # anything yt-dlp raises: classify, never lose the message
            reason, message = _classify(e)
            result = {"ok": False, "reason": reason, "message": message}
        finally:
            sys.stderr.flush()
            os.dup2(devnull, 2)
            os.chdir("/")
        replies.write(json.dumps(result) + "\n")
        replies.flush()


def _die_with_parent() -> None:
    """Kill this worker's process group (yt-dlp and its ffmpeg) once the parent is gone, so that a
    build killed with -9 leaves no download running into the folder its rerun will use: at once on
    the SIGTERM that the parent's death sends (`processes.start`), else when polling sees it."""
    if not hasattr(os, "killpg"):
        return
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_SECTION_FIELDS = ("url", "source_id", "start", "end", "workdir")
"""A job's fields that are its own; the others are the build's settings, the same job to job."""


class _Session:
    """The worker's yt-dlp session: one `YoutubeDL` for every job of the same settings, as yt-dlp's
    own command line fetches a batch of URLs. Making one costs 0.04 to 0.06 CPU-s (its list of
    1,800 extractors, a TLS context) where an extraction with it costs 0.01 (bench/source_cost.py).
    Each job sets only its own output name, folder and section; a job in which yt-dlp raises
    leaves it to be made anew, so that nothing of a failure carries over."""

    def __init__(self) -> None:
        self.settings: str | None = None
        self.ydl = None

    def fetch(self, job: dict) -> dict:
        """yt-dlp's info of the job's URL, its section downloaded into its work folder."""
        ydl = self._ydl(job)
        ydl.params["outtmpl"]["default"] = f"{job['source_id']}.%(ext)s"
        ydl.params["paths"] = {"home": job["workdir"]}
        section = [{"start_time": job["start"], "end_time": job["end"]}]
        ydl.params["download_ranges"] = lambda info, ydl: section
        try:
            info = ydl.extract_info(job["url"], download=True)
        except BaseException:
            self.close()
            raise
        ydl.save_cookies()  # what closing it after each job did: the file stays current
        return info

    def _ydl(self, job: dict):
        import yt_dlp

        settings = json.dumps({k: v for k, v in job.items() if k not in _SECTION_FIELDS})
        if self.ydl is None or settings != self.settings:
            self.close()
            self.ydl, self.settings = yt_dlp.YoutubeDL(_ytdlp_params(job)), settings
        return self.ydl

    def close(self) -> None:
        if self.ydl is not None:
            self.ydl.close()
        self.ydl = self.settings = None


def _ytdlp_params(job: dict) -> dict:
    """yt-dlp's options for the build's settings in `job` (its section is set per job)."""
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
    from yt_dlp.utils import parse_bytes

    # yt-dlp decides whether ffmpeg can cut sections before reading `ffmpeg_location`; its own CLI
    # sets this context variable for --ffmpeg-location, so do the same.
    location_var = getattr(FFmpegPostProcessor, "_ffmpeg_location", None)
    if location_var is not None:
        location_var.set(job["ffmpeg"])
    rw_timeout = str(int(job["socket_timeout"] * 1e6))  # microseconds
    params = {
        "format": job["format"],
        "outtmpl": {"default": "%(id)s.%(ext)s"},  # each job names its file (`_Session.fetch`)
        "merge_output_format": "mp4",
        "ffmpeg_location": job["ffmpeg"],
        "external_downloader_args": {
            "ffmpeg_i": ["-rw_timeout", rw_timeout],
            "ffmpeg": ["-nostats", "-loglevel", "level+warning"],  # "[error] ..." tags errors
        },
        "socket_timeout": job["socket_timeout"],
        "retries": 0,
        "extractor_retries": 0,
        "fragment_retries": 0,
        "noplaylist": True,
        "noprogress": True,
        "logger": _WorkerLogger(),
        "enable_file_urls": job["allow_local"],
        "overwrites": True,
        "cachedir": False,
    }
    if job["cookies"]:
        params["cookiefile"] = job["cookies"]
    if job["rate_limit"]:
        params["ratelimit"] = parse_bytes(job["rate_limit"])
        if params["ratelimit"] is None:
            raise DownloadError(
                "bad_option", f"rate limit {job['rate_limit']!r} is not like 50K or 4.2M"
            )
    return params


_SESSION = _Session()


def _run_ytdlp(job: dict) -> Path:
    """The media file of the job's section, fetched by the worker's yt-dlp session."""
    info = _SESSION.fetch(job)
    if info is None:
        raise DownloadError("unavailable", "yt-dlp returned nothing for this URL")
    if info.get("_type") == "playlist":
        raise DownloadError("unsupported_url", "the URL is a playlist, not one video")
    files = [d.get("filepath") for d in info.get("requested_downloads") or []]
    files = [Path(f) for f in files if f and Path(f).is_file()]
    if not files:
        raise DownloadError("error", "yt-dlp finished without writing a file")
    return files[0]


def _classify(error: BaseException) -> tuple[str, str]:
    """(reason, message) of an exception raised by yt-dlp, from the causes it wraps."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import ContentTooShortError, UnsupportedError

    message = re.sub(r"^ERROR:\s*|\s*\(caused by .*\)$", "", str(error).strip())
    chain, seen = [error], set()
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HTTPError):
            return _GONE.get(e.status, f"http_{e.status}"), message
        if isinstance(e, UnsupportedError):
            return "unsupported_url", message
        if isinstance(e, ContentTooShortError):
            return "truncated", message
        if isinstance(e, (TimeoutError,)) or (
            isinstance(e, TransportError) and "timed out" in str(e).lower()
        ):
            return "timeout", message
        if isinstance(e, (TransportError, ConnectionError)):
            return "connection", message
        exc_info = getattr(e, "exc_info", None)
        chain += [e.__cause__, e.__context__, getattr(e, "cause", None)]
        if exc_info:
            chain.append(exc_info[1])
    low = message.lower().replace("\u2019", "'")  # YouTube writes "you’re" with a curly quote
    if "ffmpeg exited with code" in low:
        return "ffmpeg", message
    if "requested format is not available" in low:
        return "no_format", message
    if "unsupported url" in low:
        return "unsupported_url", message
    if "no such file" in low:
        return "not_found", message
    for reason, phrases in _REFUSALS:
        if any(p in low for p in phrases):
            return reason, message
    return "error", message


_GONE = {410: "removed", 451: "removed"}
"""HTTP statuses that say a resource is gone for good (410 Gone, 451 Unavailable For Legal
Reasons), by the reason they give."""
_REFUSALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # a bot wall or a rate limit first: its words ("sign in", "unavailable") are the others' too
    ("blocked", ("not a bot", "try again later", "captcha", "rate-limited")),
    ("private", ("private video", "video is private")),
    (
        "removed",
        (
            "has been removed",  # "... by the uploader", "... for violating YouTube's ..."
            "has been terminated",  # "... the YouTube account associated with this video ..."
            "closed their youtube account",
            "no longer available",  # "... due to a copyright claim by ...", "... because ..."
            "does not exist",
            "video unavailable",  # YouTube's word for a deleted video when it says no more
        ),
    ),
    ("unavailable", ("sign in", "members", "in your country", "geo")),
)
"""yt-dlp's messages (YouTube's own words) by the reason they give, first match wins."""
