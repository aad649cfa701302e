"""Real yt-dlp (and its ffmpeg section download) against loopback servers, good and faulty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.pipeline.download import DownloadError, DownloadOptions, download
from landscape_av.sources.source_list import Source

from .conftest import FPS, frame_numbers

FAST = DownloadOptions(retries=1, backoff=0.2, timeout=60)


def src(url: str, start: float | None = None, end: float | None = None, sid: str = "s1") -> Source:
    return Source(sid, url, "raining", start=start, end=end, source_list="test.csv", line=2)


def durations(path: Path) -> tuple[float, float]:
    """(video, audio) seconds of a file, from its streams."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return float(v.duration * v.time_base), float(a.duration * a.time_base)


def test_section_from_start_with_honest_offset(faulty_server, tmp_path):
    got = download(src(faulty_server.url + "files/numbered.mp4", start=5.5), tmp_path, FAST, 10.0)
    assert got.source_id == "s1" and got.path.parent == tmp_path and got.offset == 5.5
    frames = frame_numbers(got.path)
    # media time t shows source time offset + t: the first frame is source frame 5.5 s * 30 fps
    assert frames[0] == (0.0, round(5.5 * FPS))
    assert all(n == round((got.offset + t) * FPS) for t, n in frames)
    video, audio = durations(got.path)
    assert video == pytest.approx(10.0, abs=0.15) and audio == pytest.approx(10.0, abs=0.15)
    assert not (tmp_path / ".partial" / "s1").exists()


def test_offset_holds_for_webm_which_may_start_late(faulty_server, numbered_mp4, tmp_path):
    webm = numbered_mp4.with_name("numbered.webm")
    if not webm.exists():  # VP8/Opus with a keyframe every 2 s, deterministic
        vp8 = ["-c:v", "libvpx", "-b:v", "1M", "-deadline", "good", "-cpu-used", "5"]
        vp8 += ["-threads", "1", "-force_key_frames", "expr:gte(t,n_forced*2)"]
        run_ffmpeg(["-i", numbered_mp4, *vp8, "-c:a", "libopus", webm])
    got = download(src(faulty_server.url + "files/numbered.webm", start=5.5), tmp_path, FAST, 10.0)
    assert got.path.suffix == ".webm" and got.offset == 5.5
    frames = frame_numbers(got.path)
    assert frames[0][0] >= 0  # the copy may begin at a keyframe after the start
    assert all(n == round((got.offset + t) * FPS) for t, n in frames)


def test_section_is_the_seconds_asked_bounded_by_end(faulty_server, tmp_path):
    opts = DownloadOptions(retries=0)
    whole = download(src(faulty_server.url + "files/numbered.mp4", sid="a"), tmp_path, opts, 8.0)
    assert whole.offset == 0.0
    assert durations(whole.path)[0] == pytest.approx(8.0, abs=0.15)
    bounded = download(
        src(faulty_server.url + "files/numbered.mp4", 2.0, 7.0, "b"), tmp_path, opts, 8.0
    )
    assert bounded.offset == 2.0
    assert durations(bounded.path)[0] == pytest.approx(5.0, abs=0.15)
    assert frame_numbers(bounded.path)[0][1] == 2 * FPS


def test_rerun_skips_finished_source_without_network(faulty_server, tmp_path):
    source = src(faulty_server.url + "files/numbered.mp4", start=1.0)
    first = download(source, tmp_path, FAST, 10.0)
    hits = faulty_server.count("files/numbered.mp4")
    assert hits >= 1
    again = download(source, tmp_path, FAST, 10.0)
    assert again == first
    assert faulty_server.count("files/numbered.mp4") == hits
    record = json.loads((tmp_path / "s1.download.json").read_text())
    assert record["file"] == first.path.name and record["offset"] == 1.0
    # a different section of the same source is fetched again
    download(src(source.url, start=2.0), tmp_path, FAST, 10.0)
    assert faulty_server.count("files/numbered.mp4") > hits


def test_rerun_after_kill_restarts_cleanly(faulty_server, tmp_path):
    """What a kill -9 leaves (a half-written work folder, a media file without record) is redone."""
    workdir = tmp_path / ".partial" / "s1"
    workdir.mkdir(parents=True)
    (workdir / "s1.mp4.part").write_bytes(b"\0" * 1000)
    (tmp_path / "s1.mp4").write_bytes(b"not finished")
    got = download(src(faulty_server.url + "files/numbered.mp4"), tmp_path, FAST, 10.0)
    assert got.path == tmp_path / "s1.mp4"
    assert durations(got.path)[0] == pytest.approx(10.0, abs=0.15)
    assert not workdir.exists()


def _processes_in(folder: Path) -> list[int]:
    """Pids of processes whose working folder is `folder` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == folder:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("route", ["hang", "stall"])
@pytest.mark.slow
def test_killed_build_leaves_no_download_running(faulty_server, tmp_path, route: str):
    """kill -9 of the calling process takes its yt-dlp child down with it, and the ffmpeg that
    yt-dlp runs (`stall`: ffmpeg waits for the rest of the body)."""
    script = (
        "import sys; from pathlib import Path\n"
        "from landscape_av.pipeline.download import DownloadOptions, download\n"
        "from landscape_av.sources.source_list import Source\n"
        "download(Source('s1', sys.argv[1], 'raining'), Path(sys.argv[2]), DownloadOptions(), 100)\n"
    )
    url = faulty_server.url + f"{route}/numbered.mp4"
    parent = subprocess.Popen([sys.executable, "-c", script, url, str(tmp_path)])
    workdir = (tmp_path / ".partial" / "s1").resolve()
    deadline = time.monotonic() + 30
    wanted = {"hang": 1, "stall": 2}[route]  # yt-dlp's child, and the ffmpeg it runs
    while not (
        faulty_server.count(f"{route}/numbered.mp4") and len(_processes_in(workdir)) >= wanted
    ):
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _processes_in(workdir):
        assert time.monotonic() < deadline, "a download process outlived its killed parent"
        time.sleep(0.1)


def test_cookies_reach_every_request_and_rate_limit_is_accepted(faulty_server, tmp_path):
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tsession\tabc123\n"
    )
    opts = DownloadOptions(cookies=jar, rate_limit="50M")
    download(src(faulty_server.url + "files/numbered.mp4"), tmp_path / "dl", opts, 2.0)
    # yt-dlp's own request carries the cookie (ffmpeg's cookie matching drops host-only cookies
    # such as this one on its section request; sites' cookies are for the extractor's pages)
    assert "session=abc123" in faulty_server.cookies["/files/numbered.mp4"][0]
    with pytest.raises(DownloadError) as err:
        bad = DownloadOptions(rate_limit="fast")
        download(src(faulty_server.url + "files/numbered.mp4", sid="s2"), tmp_path / "dl", bad, 2.0)
    assert err.value.reason == "bad_option" and "fast" in str(err.value)


def test_http_404_fails_at_once(faulty_server, tmp_path):
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "status/404/numbered.mp4"), tmp_path, FAST, 10.0)
    assert err.value.reason == "http_404"
    assert "404" in str(err.value) and "(line 2)" in str(err.value)  # its row, not the list's path
    assert "test.csv" not in str(err.value)
    assert faulty_server.count("status/404/numbered.mp4") == 1  # not retried
    assert list(tmp_path.glob("s1*")) == []


@pytest.mark.slow
def test_http_500_is_retried_with_backoff_then_fails(faulty_server, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "status/500/numbered.mp4"), tmp_path, FAST, 10.0)
    assert err.value.reason == "http_500"
    assert "attempt 2 of 2" in str(err.value)
    assert faulty_server.count("status/500/numbered.mp4") == 2
    assert time.monotonic() - t0 >= 0.2  # the backoff before the second attempt
    assert list(tmp_path.glob("s1*")) == [] and not (tmp_path / ".partial" / "s1").exists()


def test_body_shorter_than_announced_is_truncated_not_retried(faulty_server, tmp_path):
    opts = DownloadOptions(retries=1, backoff=0.1)
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "cut/numbered.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "truncated" and "attempt 1 of 2" in str(err.value)
    assert list(tmp_path.glob("s1*")) == []


@pytest.mark.parametrize("route", ["cut-file", "short-length"])
def test_a_file_cut_short_on_the_server_is_truncated_not_a_connection_error(
    faulty_server, tmp_path, route
):
    """A file that the server itself holds cut short, and a Content-Length shorter than the
    file: the HTTP exchange completes, the media ends early, and a retry would get the same."""
    opts = DownloadOptions(retries=1, backoff=0.1)
    with pytest.raises(DownloadError) as err:
        download(src(f"{faulty_server.url}{route}/numbered.mp4"), tmp_path, opts, 20.0)
    assert err.value.reason == "truncated", err.value
    assert faulty_server.count(f"{route}/numbered.mp4") >= 1
    assert "attempt 1 of 2" in str(err.value)


def test_a_body_that_does_not_match_its_encoding_is_bad_encoding_not_retried(
    faulty_server, tmp_path
):
    opts = DownloadOptions(retries=1, backoff=0.1)
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "gzip/numbered.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "bad_encoding", err.value
    assert "attempt 1 of 2" in str(err.value)
    assert list(tmp_path.glob("s1*")) == []


@pytest.mark.slow
def test_a_dripping_source_is_dropped_below_the_minimum_rate(faulty_server, tmp_path):
    opts = DownloadOptions(retries=0, socket_timeout=60.0, min_rate=50_000)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "drip/numbered.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "too_slow" and "min-rate" in str(err.value)
    assert time.monotonic() - t0 < 15


def test_unreachable_port(closed_port, tmp_path):
    opts = DownloadOptions(retries=1, backoff=0.1)
    with pytest.raises(DownloadError) as err:
        download(src(f"http://127.0.0.1:{closed_port}/x.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "connection"


@pytest.mark.slow
def test_hung_server_times_out(faulty_server, tmp_path):
    opts = DownloadOptions(retries=3, backoff=0.1, timeout=3.0, socket_timeout=120.0)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "hang/numbered.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "timeout"
    assert time.monotonic() - t0 < 3.0 + 3.0
    assert not (tmp_path / ".partial" / "s1").exists()


def test_stalled_body_hits_the_socket_timeout(faulty_server, tmp_path):
    opts = DownloadOptions(retries=0, timeout=60.0, socket_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "stall/numbered.mp4"), tmp_path, opts, 10.0)
    assert err.value.reason == "timeout"
    assert time.monotonic() - t0 < 30


def test_local_files_need_allow_local(numbered_mp4, tmp_path):
    for url in (numbered_mp4.as_uri(), str(numbered_mp4)):
        with pytest.raises(DownloadError) as err:
            download(src(url), tmp_path, FAST, 10.0)
        assert err.value.reason == "local_not_allowed" and "allow_local" in str(err.value)
    opts = DownloadOptions(allow_local=True)
    got = download(src(numbered_mp4.as_uri(), start=4.0), tmp_path, opts, 3.0)
    assert got.offset == 4.0 and frame_numbers(got.path)[0] == (0.0, 4 * FPS)
    with pytest.raises(DownloadError) as err:
        download(src(str(tmp_path / "missing.mp4"), sid="m"), tmp_path, opts, 3.0)
    assert err.value.reason == "not_found"
    for path, kind in [("/dev/zero", "a device"), (str(tmp_path), "a folder")]:
        with pytest.raises(DownloadError) as err:
            download(src(path, sid="z"), tmp_path, opts, 3.0)
        assert err.value.reason == "not_a_file" and kind in str(err.value), str(err.value)


def test_unsupported_scheme(tmp_path):
    with pytest.raises(DownloadError) as err:
        download(src("ftp://example.org/a.mp4"), tmp_path, FAST, 10.0)
    assert err.value.reason == "unsupported_url"
