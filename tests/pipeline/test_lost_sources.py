"""Videos gone from their site (private, removed, account terminated) are `lost` sources: a property
of the source list, recorded apart from failures, not held against `--max-failure-rate`, not
retried by later runs unless `--retry-lost`, and shown as the list's attrition in `stats` and the
card. A bot wall stays a transient network failure.

YouTube's messages come through yt-dlp's own exception types (`_classify` sees what a YouTube
extraction raises); over 127.0.0.1 the removal is HTTP 410 Gone, which the same rule reads."""

from __future__ import annotations

import collections
import csv
import functools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from landscape_av.pipeline.download import LOST_REASONS, RETRYABLE_REASONS, _classify
from landscape_av.pipeline.network import NETWORK_REASONS

from .conftest import snapshot, write_media_list

CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]
YOUTUBE = {  # YouTube's words as yt-dlp reports them (its extractor and its issue tracker)
    "Private video. Sign in if you've been granted access to this video": "private",
    "Video unavailable. This video is private": "private",
    "Video unavailable. This video has been removed by the uploader": "removed",
    "Video unavailable. This video is no longer available because the YouTube account "
    "associated with this video has been terminated.": "removed",
    "This video has been removed for violating YouTube's policy on hate speech.": "removed",
    "Video unavailable. This video is no longer available due to a copyright claim by X": "removed",
    "Video unavailable": "removed",
    "Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or --cookies for the "
    "authentication.": "blocked",
    "Video unavailable. This content isn\u2019t available, try again later. The current session "
    "has been rate-limited by YouTube for up to an hour.": "blocked",
    "Sign in to confirm your age. This video may be inappropriate for some users.": "unavailable",
    "The uploader has not made this video available in your country": "unavailable",
    "Join this channel to get access to members-only content like this video, and other "
    "exclusive perks.": "unavailable",
}


@pytest.mark.parametrize("message", sorted(YOUTUBE))
def test_youtube_refusals_are_read_by_what_they_say(message: str):
    from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError

    kind = GeoRestrictedError if "country" in message else ExtractorError
    cause = (
        kind(message)
        if kind is GeoRestrictedError
        else kind(message, expected=True, video_id="abcdefghijk", ie="youtube")
    )
    error = DownloadError(f"ERROR: {cause}", exc_info=(type(cause), cause, None))
    reason, _ = _classify(error)
    assert reason == YOUTUBE[message]
    assert (reason in LOST_REASONS) == (YOUTUBE[message] in ("private", "removed"))
    if reason == "blocked":  # a bot wall passes: retried, and it stops the build like 429
        assert reason in RETRYABLE_REASONS and reason in NETWORK_REASONS


class _Gone(BaseHTTPRequestHandler):
    """`/files/<name>`: the file; `/gone/<name>`: 410 Gone; `/error/<name>`: 500. Counts hits."""

    def __init__(self, *args, folder: Path, hits: collections.Counter, **kwargs):
        self.folder, self.hits = folder, hits
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.hits[self.path] += 1
        kind, _, name = self.path.lstrip("/").partition("/")
        if kind != "files":
            self.send_error(410 if kind == "gone" else 500)
            return
        body = (self.folder / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def gone_server(build_media: Path) -> Iterator[tuple[str, collections.Counter]]:
    hits: collections.Counter = collections.Counter()
    handler = functools.partial(_Gone, folder=build_media, hits=hits)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", hits
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_lost_sources_are_kept_apart_and_not_retried(gone_server, tmp_path: Path):
    url, hits = gone_server
    rows = [("good", f"{url}files/good2.mp4", "raining")]
    rows += [(f"gone{i}", f"{url}gone/v{i}.mp4", "raining") for i in range(3)]
    rows += [("broken", f"{url}error/v.mp4", "wind noise")]
    source_list = write_media_list(tmp_path / "sources.csv", rows)
    out = tmp_path / "corpus"
    cmd = [*CLI, "build", "--source-list", str(source_list), "--out", str(out), "--json"]
    cmd += ["--size", "320x180", "--min-size", "320x180", "--max-clips", "1", "--retries", "0"]

    def build(*extra: str) -> dict:
        proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr  # 1 failure of 2 sources not lost: 50%
        return json.loads(proc.stdout)

    summary = build()
    assert (summary["clipped"], summary["lost"], summary["failed"]) == (1, 3, 1)
    gone = [f"/gone/v{i}.mp4" for i in range(3)]
    assert [hits[p] for p in gone] == [1, 1, 1]
    with open(out / "manifests" / "sources.csv", newline="") as f:
        status = {r["source_id"]: (r["status"], r["reason"]) for r in csv.DictReader(f)}
    assert status["gone0"] == ("lost", "removed") and status["broken"][0] == "failed"

    stats = subprocess.run(
        [*CLI, "stats", str(out), "--json", "--no-figures"], capture_output=True, text=True
    )
    totals = json.loads(stats.stdout)["totals"]
    assert (totals["lost"], totals["attrition"]) == (3, pytest.approx(3 / 5))
    assert "3 of 5 (60.0%) no longer available" in (out / "README.md").read_text()

    before = snapshot(out)
    assert build()["lost"] == 3  # the next run: lost sources kept, not fetched again
    assert [hits[p] for p in gone] == [1, 1, 1] and hits["/error/v.mp4"] == 2
    assert snapshot(out) == before
    assert build("--retry-lost")["lost"] == 3  # on request: tried again
    assert [hits[p] for p in gone] == [2, 2, 2]
    assert snapshot(out) == before
