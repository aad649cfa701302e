"""The long-lived yt-dlp workers: one serves source after source, yet a hung or dead worker fails
only its own source, and no worker outlives the process (not the thread) that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from landscape_av import processes
from landscape_av.pipeline import download as download_module
from landscape_av.pipeline.download import DownloadError, DownloadOptions, close_workers, download
from landscape_av.sources.source_list import Source

from .conftest import FPS, frame_numbers

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
FAST = DownloadOptions(retries=0, timeout=60)


def src(url: str, sid: str) -> Source:
    return Source(sid, url, "raining")


def _workers(parent: int | None = None) -> set[int]:
    """Pids of the live download workers whose parent is `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and stat[0] != "Z" and b"_worker_main" in cmdline:
            pids.add(int(entry.name))
    return pids


def _cwd_of(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


@pytest.mark.slow
def test_one_worker_serves_source_after_source_with_the_same_result(faulty_server, tmp_path):
    """A reused worker gives the bytes a fresh one gives, and keeps nothing of the job before
    (here: the first job's cookies are not sent by the second)."""
    url = faulty_server.url + "files/numbered.mp4"
    (tmp_path / "cookies.txt").write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tsession\tone\n"
    )
    close_workers()
    with_cookies = DownloadOptions(retries=0, timeout=60, cookies=tmp_path / "cookies.txt")
    first = download(src(url, "a"), tmp_path / "dl", with_cookies, 4.0)
    serving = _workers()
    sent = len(faulty_server.cookies["/files/numbered.mp4"])
    second = download(src(url, "b"), tmp_path / "dl", FAST, 4.0)
    assert len(serving) == 1 and _workers() == serving  # the idle worker took the second job
    assert first.path.read_bytes() == second.path.read_bytes()
    assert frame_numbers(second.path)[0] == (0.0, 0)
    assert all(_cwd_of(pid) == Path("/") for pid in serving)  # an idle worker holds no folder
    cookies = faulty_server.cookies["/files/numbered.mp4"]
    assert "session=one" in cookies[0] and not any(cookies[sent:]), cookies


@pytest.mark.slow
def test_a_worker_started_by_a_thread_that_ended_keeps_serving(faulty_server, tmp_path):
    """The kernel's parent-death signal follows the thread that started a child: workers must not
    die with the short-lived thread that first asked for one."""
    url = faulty_server.url + "files/numbered.mp4"
    close_workers()
    assert not _workers()
    thread = threading.Thread(target=download, args=(src(url, "t"), tmp_path, FAST, 2.0))
    thread.start()
    thread.join()
    serving = _workers()
    assert len(serving) == 1  # the thread's worker, idle now
    time.sleep(1.0)  # a death signal, had there been one, has arrived
    assert _workers() == serving
    download(src(url, "m"), tmp_path, FAST, 2.0)
    assert _workers() == serving


@pytest.mark.slow
def test_a_hung_download_fails_alone_and_its_worker_is_replaced(faulty_server, tmp_path):
    """The deadline (3 s) ends it, not the server (which holds the request 60 s) nor the socket
    timeout (120 s)."""
    opts = DownloadOptions(retries=0, timeout=3.0, socket_timeout=120.0)
    began = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(src(faulty_server.url + "hang/numbered.mp4", "h"), tmp_path, opts, 10.0)
    assert err.value.reason == "timeout" and time.monotonic() - began < 30
    hung = {pid for pid in _workers() if _cwd_of(pid) != Path("/")}
    assert not hung  # the worker that hung was killed, not left with its job
    got = download(src(faulty_server.url + "files/numbered.mp4", "ok"), tmp_path, FAST, 3.0)
    assert frame_numbers(got.path)[0] == (0.0, 0)


@pytest.mark.slow
def test_a_worker_that_dies_fails_only_its_source(faulty_server, tmp_path):
    """SIGKILL of the worker mid-download (its ffmpeg waits on a stalled body): that source fails
    at once with the worker's death in its message; the next source gets a new worker."""
    opts = DownloadOptions(retries=0, timeout=60.0, socket_timeout=60.0)
    failure: list[BaseException] = []

    def fetch() -> None:
        try:
            download(src(faulty_server.url + "stall/numbered.mp4", "d"), tmp_path, opts, 10.0)
        except DownloadError as e:
            failure.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    workdir = (tmp_path / ".partial" / "d").resolve()
    deadline = time.monotonic() + 30
    while not (busy := [pid for pid in _workers() if _cwd_of(pid) == workdir]):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.1)
    while not faulty_server.count("stall/numbered.mp4"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(busy[0], signal.SIGKILL)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the download outlived its worker's death by 10 s"
    assert failure and failure[0].reason == "error" and "worker died" in str(failure[0])
    got = download(src(faulty_server.url + "files/numbered.mp4", "next"), tmp_path, FAST, 3.0)
    assert frame_numbers(got.path)[-1][1] == 3 * FPS - 1


class _Fetch(threading.Thread):
    """A download in a thread of its own; `got` or `error` once it ended, `took` its seconds."""

    def __init__(
        self, url: str, sid: str, folder: Path, opts: DownloadOptions, seconds: float = 2.0
    ) -> None:
        super().__init__()
        self.args = (src(url, sid), folder, opts, seconds)
        self.got, self.error, self.took = None, None, 0.0

    def run(self) -> None:
        began = time.monotonic()
        try:
            self.got = download(*self.args)
        except BaseException as e:  # noqa: BLE001 (the test looks at what it was)
            self.error = e
        self.took = time.monotonic() - began


def _stall(faulty_server, tmp_path: Path) -> tuple[_Fetch, int]:
    """A download of 10 s whose worker waits on a body that stalls before their end (up to its 60 s
    socket timeout), and the pid of that worker once it is on the job."""
    opts = DownloadOptions(retries=0, timeout=60.0, socket_timeout=60.0)
    stalled = _Fetch(faulty_server.url + "stall/numbered.mp4", "st", tmp_path, opts, 10.0)
    stalled.start()
    workdir = (tmp_path / ".partial" / "st").resolve()
    deadline = time.monotonic() + 30
    while not (busy := [pid for pid in _workers() if _cwd_of(pid) == workdir]):
        assert time.monotonic() < deadline and stalled.is_alive(), stalled.error
        time.sleep(0.05)
    return stalled, busy[0]


def _stop(*threads: threading.Thread) -> None:
    """Stop the downloads as Ctrl-C does, and allow children again."""
    try:
        processes.stop_all()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        processes.reset()


@pytest.mark.slow
def test_downloads_at_once_share_one_worker_while_it_keeps_up(faulty_server, tmp_path, monkeypatch):
    """Two downloads asked for at once: the second waits for the first one's worker
    (`SPAWN_PATIENCE`, long here so that a loaded machine keeps to it) instead of paying for the
    start of another, and both get their bytes."""
    monkeypatch.setattr(download_module, "SPAWN_PATIENCE", 60.0)
    close_workers()
    url = faulty_server.url + "files/numbered.mp4"
    fetches = [_Fetch(url, sid, tmp_path, FAST) for sid in ("a", "b")]
    for fetch in fetches:
        fetch.start()
    for fetch in fetches:
        fetch.join(timeout=60)
    assert [f.error for f in fetches] == [None, None]
    assert all(frame_numbers(f.got.path)[-1][1] == 2 * FPS - 1 for f in fetches)
    assert len(_workers()) == 1  # started once, idle now


@pytest.mark.slow
def test_a_download_waits_for_a_busy_worker_only_its_patience(faulty_server, tmp_path, monkeypatch):
    """While a worker is held by a stalled source, the next download starts a worker of its own
    once it has waited `SPAWN_PATIENCE` s, and is done while the stalled one is still held."""
    monkeypatch.setattr(download_module, "SPAWN_PATIENCE", 2.0)
    close_workers()
    stalled, held = _stall(faulty_server, tmp_path)
    try:
        fetch = _Fetch(faulty_server.url + "files/numbered.mp4", "n", tmp_path, FAST)
        fetch.run()  # in this thread
        assert fetch.error is None and frame_numbers(fetch.got.path)[0] == (0.0, 0)
        assert fetch.took >= 2.0  # it waited for the busy worker first
        assert stalled.is_alive() and _cwd_of(held) == (tmp_path / ".partial" / "st").resolve()
        assert len(_workers()) == 2
    finally:
        _stop(stalled)


@pytest.mark.slow
def test_ctrl_c_ends_a_download_waiting_for_a_worker(faulty_server, tmp_path, monkeypatch):
    """A download that waits for a busy worker (patience 60 s) stops with the build at once,
    starting no worker."""
    monkeypatch.setattr(download_module, "SPAWN_PATIENCE", 60.0)
    close_workers()
    stalled, held = _stall(faulty_server, tmp_path)
    waiting = _Fetch(faulty_server.url + "files/numbered.mp4", "w", tmp_path, FAST)
    waiting.start()
    try:
        while not (tmp_path / ".partial" / "w" / "stderr.log").exists():
            assert waiting.is_alive(), waiting.error
            time.sleep(0.05)
        time.sleep(0.5)
        assert waiting.is_alive() and _workers() == {held}  # waiting, no worker of its own
    finally:
        began = time.monotonic()
        _stop(stalled, waiting)
    assert not waiting.is_alive() and time.monotonic() - began < 10
    assert isinstance(waiting.error, processes.Stopped), waiting.error
    assert not _workers()


def _descendants(pid: int) -> set[int]:
    """Pids of the living descendants of `pid`."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = Path(f"/proc/{parent}/task").iterdir()  # each thread has its own children
            children = [c for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            continue
        found |= {int(c) for c in children}
        todo += [int(c) for c in children]
    return found


def _comm(pid: int) -> str:
    """The command name of `pid` ("" once it has ended)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_ctrl_c_mid_download_kills_the_worker_and_its_ffmpeg_at_once(faulty_server, tmp_path):
    """What Ctrl-C does (`processes.stop_all`) ends a download whose ffmpeg waits on a stalled
    body at once, not at its 60 s socket timeout, and leaves neither the worker nor its ffmpeg."""
    opts = DownloadOptions(retries=0, timeout=60.0, socket_timeout=60.0)
    raised: list[BaseException] = []

    def fetch() -> None:
        try:
            download(src(faulty_server.url + "stall/numbered.mp4", "c"), tmp_path, opts, 10.0)
        except BaseException as e:  # noqa: BLE001 (the test looks at what it was)
            raised.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    workdir = (tmp_path / ".partial" / "c").resolve()
    deadline = time.monotonic() + 30
    ffmpeg: list[int] = []
    # the worker on this job, with its ffmpeg reading the stalled body (the second request: the
    # first is yt-dlp's own look at the URL; an earlier ffmpeg is yt-dlp's version check)
    while not ffmpeg or faulty_server.count("stall/numbered.mp4") < 2:
        assert time.monotonic() < deadline and thread.is_alive(), raised
        busy = [pid for pid in _workers() if _cwd_of(pid) == workdir]
        kids = _descendants(busy[0]) if busy else set()
        ffmpeg = [p for p in kids if _alive(p) and "ffmpeg" in _comm(p)]
        time.sleep(0.05)
    try:
        began = time.monotonic()
        processes.stop_all()
        thread.join(timeout=20)
        took = time.monotonic() - began
    finally:
        processes.reset()
    assert not thread.is_alive(), "the download went on after the stop"
    assert took < 10, f"the stop took {took:.1f} s"
    assert raised and isinstance(raised[0], processes.Stopped), raised
    assert not _alive(busy[0]) and not _alive(ffmpeg[0])


@pytest.mark.slow
def test_an_idle_worker_dies_with_its_killed_parent(faulty_server, tmp_path):
    """kill -9 of a process whose worker waits for its next job leaves no worker behind."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from landscape_av.pipeline.download import DownloadOptions, download\n"
        "from landscape_av.sources.source_list import Source\n"
        "download(Source('s1', sys.argv[1], 'raining'), Path(sys.argv[2]), DownloadOptions(), 2)\n"
        "print('done', flush=True)\n"
        "time.sleep(120)\n"
    )
    url = faulty_server.url + "files/numbered.mp4"
    parent = subprocess.Popen(
        [sys.executable, "-c", script, url, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "done"
        idle = _workers(parent.pid)
        assert idle, "the finished download left no idle worker to reuse"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and _cwd_of(pid) is not None for pid in idle):
        assert time.monotonic() < deadline, "an idle worker outlived its killed parent"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_relative_folder_and_cookie_file_mean_the_callers(faulty_server, tmp_path, monkeypatch):
    """The workers run in their own folder: relative paths are the calling process's."""
    monkeypatch.chdir(tmp_path)
    Path("cookies.txt").write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tsession\trel\n"
    )
    opts = DownloadOptions(retries=0, cookies=Path("cookies.txt"))
    got = download(src(faulty_server.url + "files/numbered.mp4", "r"), Path("dl"), opts, 2.0)
    assert got.path == Path("dl") / "r.mp4" and (tmp_path / "dl" / "r.mp4").is_file()
    assert "session=rel" in faulty_server.cookies["/files/numbered.mp4"][0]
