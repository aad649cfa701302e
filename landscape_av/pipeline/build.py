"""The build: source list -> download -> probe -> filter -> clips -> shards -> manifests -> card.

Every source goes through the first four stages in a worker pool; its finished result (clips, or a
rejection) is committed as one folder `OUT/.work/samples/<source_id>/`, renamed into place, so a
build killed at any point (Ctrl-C or kill -9) and run again reuses every finished source and redoes
only the unfinished ones. Up to `workers` sources are clipped at once (each clip encoder runs on one
thread, for reproducible bytes: `clip.X264_THREADS`), and meanwhile up to `downloads` more are
fetched, probed and filtered, so that encoding does not wait for the network. Sharding then packs
the committed samples in a fixed order, so shards and manifests come out byte-identical to those of
an uninterrupted build, whatever the number of workers. With `engine="ray"` the per-source work
runs as Ray tasks on a cluster instead, and the driver commits their results the same way
(`landscape_av.pipeline.ray_engine`).
Failures that may pass (download, ffmpeg) are not committed and are retried on the next run; each
run records its failures in the failures manifest and goes on. No error of one source stops the
build: whatever its file makes a stage raise becomes that source's failure (`_failing_as`).

The corpus itself (shards, manifests, build.json, card) is written to a sibling folder and swapped
in whole when the build has finished (`_swap_in`), so OUT always holds the old corpus or the new one;
a build that ends without one (`BuildStopped`: no clip, too many failures, offline, disk full,
Ctrl-C, OUT holding another build's corpus) leaves OUT's corpus as it was, with its exit code
(`EXIT_CODES`) and the failures so far in `OUT/.work/manifests/`.

`LANDSCAPE_AV_CRASH_AT=<stage>:<n>` (stage: download, clip or shard) makes the process kill itself
with SIGKILL right after its n-th completion of that stage: the resume tests use it to crash a real
build at a chosen point.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
from rich.progress import Progress

from landscape_av import __version__, processes
from landscape_av.classes import class_vocabulary
from landscape_av.corpus.card import write_card
from landscape_av.corpus.manifests import write_manifest
from landscape_av.ffmpeg import FFmpegError
from landscape_av.files import atomic_write, file_sha256
from landscape_av.pipeline.clip import ClipError, ClipOptions, clip_count, cut_clips
from landscape_av.pipeline.download import (
    RECORD_SUFFIX,
    Downloaded,
    DownloadError,
    DownloadOptions,
    download,
)
from landscape_av.pipeline.filters import FilterOptions, Verdict, check, check_motion
from landscape_av.pipeline.probe import Probe, ProbeError, probe
from landscape_av.pipeline.settings import flat_settings, setting
from landscape_av.pipeline.shard import (
    SampleFiles,
    ShardOptions,
    ShardPlan,
    plan_shards,
    write_shard,
)
from landscape_av.progress import console, print_summary, stage_progress
from landscape_av.schema import (
    BUILD_FILE,
    CORPUS_ENTRIES,
    DATA_DIR,
    DEFAULT_OUT,
    MANIFEST_DIR,
    SPLITS,
    WORK_DIR,
    SampleMeta,
    manifest_columns,
    sample_key,
)
from landscape_av.sources.source_list import Source, label_sources
from landscape_av.sources.split import assign_splits

CRASH_ENV = "LANDSCAPE_AV_CRASH_AT"
EXIT_NO_CLIPS = 3
EXIT_FAILURES = 4
EXIT_NETWORK = 5
EXIT_OUTPUT = 6
EXIT_REFUSED = 7
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    0: "the corpus was built (or was already there)",
    1: "a source list that cannot be read, or an unexpected error",
    2: "a bad option",
    EXIT_NO_CLIPS: "no clip was made",
    EXIT_FAILURES: "more sources failed than --max-failure-rate allows, or fewer clips were made "
    "than the corpus in OUT holds",
    EXIT_NETWORK: "the first sources all failed with the same network error (offline, blocked)",
    EXIT_OUTPUT: "the output could not be written (disk full, read-only, no permission)",
    EXIT_REFUSED: "OUT holds something that is not this build's corpus",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
"""Exit codes of `landscape-av build`: all but 0 leave the corpus in OUT as it was."""
NETWORK_PROBE = 3
"""The build stops when this many first sources all fail alike on the network."""
NETWORK_REASONS = frozenset({"connection", "timeout", "http_403", "http_429"})
LOG_FILE = "build.log"
DAMAGED_DIR = "damaged"
_ADDRESS_RE = re.compile(r" @ 0x[0-9a-f]+")
log = logging.getLogger(__name__)
STAGES = ("download", "probe", "clip")
"""Per-source stages, each with its progress bar (shards get their own after them)."""
SAMPLES_DIR = "samples"
DOWNLOADS_DIR = "downloads"
SHARD_RECORDS_DIR = "shards"
SOURCE_RECORD = "source.json"
CONFIG_RECORD = "config.json"


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class BuildConfig:
    """Every build option, with the defaults of the published corpus: each stage's own options
    (the clip length and count are the clip stage's, the minimum size the filter's; download and
    filter read them from there), the split, and how the build runs."""

    out: Path = setting(
        Path(DEFAULT_OUT),
        path="folder",
        show=DEFAULT_OUT,
        recorded=False,
        help="Corpus folder, or an fsspec URL (s3://bucket/prefix).",
    )
    workers: int = setting(
        factory=_cores,
        low=1,
        show="CPU cores",
        recorded=False,
        help="Sources clipped at once (each encoder uses one core).",
    )
    downloads: int = setting(  # network-bound; sites throttle many at once
        2,
        low=1,
        recorded=False,
        help="Sources fetched at once, while others are clipped (with --engine ray: per node).",
    )
    engine: str = setting(
        "local",
        choices=("local", "ray"),
        recorded=False,
        help="Where sources are processed: this machine's threads, or Ray tasks on a cluster.",
    )
    ray_address: str = setting(
        "auto",
        recorded=False,
        help="--engine ray: the cluster (host:port); auto: the running one, else a new local one.",
    )
    cpus_per_source: float = setting(
        1.0,
        low=0,
        low_open=True,
        recorded=False,
        help="--engine ray: CPUs each source's task holds.",
    )
    download: DownloadOptions = field(default_factory=DownloadOptions)
    filter: FilterOptions = field(default_factory=FilterOptions)
    clip: ClipOptions = field(default_factory=ClipOptions)
    shard: ShardOptions = field(default_factory=ShardOptions)
    test_fraction: float = setting(
        0.1, low=0, high=1, help="Share of sources without a split that go to test."
    )
    split_salt: str = ""
    keep_downloads: bool = setting(
        False, recorded=False, help="Keep downloaded sources after clipping."
    )
    max_failure_rate: float = setting(
        0.5,
        low=0,
        high=1,
        recorded=False,
        help="Keep the old corpus (exit 4) when a larger share of the sources fails.",
    )
    overwrite: bool = setting(
        False, recorded=False, help="Replace a corpus in OUT built from other sources or settings."
    )
    resume: bool = setting(
        False, recorded=False, help="Only continue an earlier run of this same build in OUT."
    )
    verbose: bool = setting(
        False,
        recorded=False,
        help="Show yt-dlp's and ffmpeg's messages (else: OUT/.work/build.log).",
    )
    quiet: bool = setting(False, recorded=False)

    def to_json(self) -> dict[str, Any]:
        """Settings recorded in build.json, by flat name: those that shape the corpus, not where it
        is written or how fast (no machine-specific values)."""
        return {n: leaf.value for n, leaf in flat_settings(self).items() if leaf.setting.recorded}

    def output_fingerprint(self) -> dict[str, Any]:
        """Settings that decide the committed samples; a change invalidates them."""
        return {
            name: leaf.value
            for name, leaf in flat_settings(self).items()
            if leaf.path[0] in ("clip", "filter") or name in ("test_fraction", "split_salt")
        }


@dataclass
class Outcome:
    """What became of one source: `status` is clipped, rejected or failed."""

    source: Source
    split: str
    status: str
    stage: str = ""
    reason: str = ""
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # probe facts, span, loudness, motion
    clips: list[SampleMeta] = field(default_factory=list)
    fresh: bool = False  # whether this run tried the source (not a committed result reused)


@dataclass
class BuildResult:
    out: Path
    outcomes: list[Outcome]
    shards: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        statuses = Counter(o.status for o in self.outcomes)
        failures = Counter(f"{o.stage}/{o.reason}" for o in self.outcomes if o.status != "clipped")
        clips = [c for o in self.outcomes for c in o.clips]
        return {
            "out": str(self.out),
            "sources": len(self.outcomes),
            "clipped": statuses["clipped"],
            "rejected": statuses["rejected"],
            "failed": statuses["failed"],
            "clips": len(clips),
            "hours": round(sum(c["duration"] for c in clips) / 3600, 4),
            "shards": len(self.shards),
            "bytes": sum(s["bytes"] for s in self.shards),
            "failures": dict(sorted(failures.items())),
        }


class _Crasher:
    """Kills the process with SIGKILL after the n-th completion of a stage in this run (see module
    doc): a download, a committed source ("clip"), a written shard."""

    def __init__(self) -> None:
        stage, _, count = os.environ.get(CRASH_ENV, "").partition(":")
        self.stage, self.count = stage, int(count or 0)
        self.seen = 0
        self.lock = threading.Lock()

    def done(self, stage: str) -> None:
        if stage != self.stage:
            return
        with self.lock:
            self.seen += 1
            if self.seen >= self.count:
                os.kill(os.getpid(), signal.SIGKILL)


class _Stages:
    """What the source threads share: `downloads` slots for fetching and `workers` for clipping
    (a thread holds one at a time, so the next sources are fetched, probed and filtered while
    others are encoded), the per-source progress bars, and the commits of results."""

    def __init__(
        self,
        progress: Progress,
        total: int,
        config: BuildConfig,
        crasher: _Crasher,
        on_commit: Callable[[Path], None] | None = None,
    ):
        self.progress, self.crasher, self.on_commit = progress, crasher, on_commit
        self.tasks = {name: progress.add_task(name, total=total, bytes=0) for name in STAGES}
        self.moved: Counter[str] = Counter()
        self.lock = threading.Lock()  # progress counts
        self.committing = threading.Lock()  # a crash after n commits leaves exactly n
        self.downloading = threading.BoundedSemaphore(config.downloads)
        self.network = _NetworkWatch()
        self.clipping = threading.BoundedSemaphore(config.workers)

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        """Count one more source done with each of `stages` in the progress bars."""
        with self.lock:
            for stage in stages:
                self.moved[stage] += nbytes
                self.progress.update(self.tasks[stage], advance=1, bytes=self.moved[stage])

    def downloaded(self, path: Path) -> None:
        self.network.succeeded()
        self.advance("download", nbytes=path.stat().st_size)
        self.crasher.done("download")

    def commit(self, outcome: Outcome, committed: Path, staging: Path | None) -> Outcome:
        """Make a source's result final (`_commit`), hand it to `on_commit` (the upload of a build
        to a URL), and count it done with the clip stage."""
        with self.committing:
            _commit(outcome, committed, staging)
            if self.on_commit is not None:
                self.on_commit(committed)
            self.crasher.done("clip")
        self.advance("clip", nbytes=sum(p.stat().st_size for p in committed.iterdir()))
        return outcome


class _NetworkWatch:
    """Failed download attempts in a row with the same network error from the same host, no
    download done in between: from `NETWORK_PROBE` on, sources stop retrying such errors, so that
    the first sources fail in seconds and `_check_network` stops the build."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.count = 0
        self.lock = threading.Lock()

    def give_up(self, reason: str, url: str) -> bool:
        if reason not in NETWORK_REASONS:
            return False
        key = (reason, urlsplit(url).netloc)
        with self.lock:
            self.count = self.count + 1 if key == self.key else 1
            self.key = key
            return self.count >= NETWORK_PROBE

    def succeeded(self) -> None:
        with self.lock:
            self.key, self.count = None, 0


def build(
    sources: Sequence[Source],
    config: BuildConfig,
    source_list: str = "",
    classes: Sequence[str] | None = None,
    on_commit: Callable[[Path], None] | None = None,
) -> BuildResult:
    """Build the corpus of `sources` into `config.out` (resuming any earlier run there).
    `source_list` names the list of the sources in build.json and the card; `classes` is the
    corpus's class vocabulary, which labels index (default: `class_vocabulary` of the sources;
    the CLI passes its whole list's, so that a partial build labels as the full one does);
    `on_commit(folder)` is called with each source's committed result folder as it is committed.

    The corpus is staged in a sibling folder and swapped in whole once finished (`_swap_in`).
    Raises BuildStopped (its `code` one of `EXIT_CODES`) when no corpus was committed: OUT holds
    another build's corpus, no clip was made, too many sources failed, the network is down, the
    output cannot be written, or the build was interrupted."""
    out = Path(config.out)
    classes = class_vocabulary(s.class_name for s in sources) if classes is None else classes
    sources = label_sources(sources, classes)
    recover(out)
    _check_target(out, sources, config, source_list)
    work = out / WORK_DIR
    samples_dir = work / SAMPLES_DIR
    outcomes: dict[str, Outcome] = {}
    processes.reset()
    try:
        _reset_stale_samples(samples_dir, config)
        with _build_log(work / LOG_FILE, config.verbose) as log_path:
            if not config.quiet:
                console.print(f"yt-dlp's and ffmpeg's messages go to {log_path}")
            splits = assign_splits(sources, config.test_fraction, config.split_salt)
            crasher = _Crasher()
            with stage_progress(config.quiet) as progress:
                stages = _Stages(progress, len(sources), config, crasher, on_commit)
                _run_sources(sources, splits, config, work, stages, outcomes, log_path)
                ordered = [outcomes[s.source_id] for s in sources]
                _check_outcomes(ordered, config, out)
                staging = staging_dir(out)
                staging.mkdir(exist_ok=True)
                shard_rows, key_shard = _write_shards(
                    ordered, config, samples_dir, out, staging, progress, crasher
                )
            _write_manifests(staging, samples_dir, ordered, shard_rows, key_shard)
            _write_build_json(staging, config, source_list, len(sources), classes)
            write_card(staging)
            _swap_in(staging, out, crasher)
    except BuildStopped as e:
        processes.stop_all()
        raise _stopped(e.code, str(e), outcomes, work) from None
    except KeyboardInterrupt:
        processes.stop_all()
        raise _stopped(
            EXIT_INTERRUPTED,
            f"interrupted: {len(outcomes)} of {len(sources)} sources were finished and are kept "
            f"in {work}; run the same command to resume",
            outcomes,
            work,
        ) from None
    except OSError as e:
        processes.stop_all()
        if e.errno not in _OUTPUT_ERRNOS:  # not the output's (a missing template, say): code 1
            raise _stopped(1, f"{e.filename or out}: {e.strerror or e}", outcomes, work) from None
        needed = _space_needed(work, outcomes, len(sources), config)
        raise _stopped(EXIT_OUTPUT, _output_message(e, out, needed), outcomes, work) from None
    result = BuildResult(out, ordered, shard_rows)
    summary = result.summary()
    print_summary(
        f"landscape-av build -> {out}",
        {k: v for k, v in summary.items() if k not in ("out", "failures")}
        | {f"  {k}": v for k, v in summary["failures"].items()},
        config.quiet,
    )
    return result


def _reset_stale_samples(samples_dir: Path, config: BuildConfig) -> None:
    """Drop committed samples made with other output settings (they would not match this build)."""
    record = samples_dir / CONFIG_RECORD
    wanted = config.output_fingerprint()
    if record.is_file() and json.loads(record.read_text()) != wanted:
        shutil.rmtree(samples_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(wanted, indent=1, sort_keys=True) + "\n")


def _run_sources(
    sources: Sequence[Source],
    splits: dict[str, str],
    config: BuildConfig,
    work: Path,
    stages: _Stages,
    outcomes: dict[str, Outcome],
    log_path: Path,
) -> None:
    """`_process` every source with the configured engine, putting each outcome into `outcomes`
    (by source id) as it comes, and stop early when the network is down (`_check_network`)."""
    if config.engine == "ray":
        from landscape_av.pipeline.ray_engine import run_on_ray as run
    else:
        run = _run_local
    tried: list[Outcome] = []
    probe_count = min(NETWORK_PROBE, len(sources))
    with contextlib.closing(run(sources, splits, config, work, stages)) as results:
        for outcome in results:
            outcomes[outcome.source.source_id] = outcome
            if outcome.fresh:
                tried.append(outcome)
                if len(tried) == probe_count:
                    _check_network(tried, sources, outcomes, log_path)


def _run_local(
    sources: Sequence[Source],
    splits: dict[str, str],
    config: BuildConfig,
    work: Path,
    stages: _Stages,
) -> Iterator[Outcome]:
    """The local engine: `_process` every source in a thread pool, yielding outcomes as they come;
    on any exception, Ctrl-C or early close, stop every child and cancel what has not begun."""
    pool = ThreadPoolExecutor(max_workers=config.workers + config.downloads)
    futures = [pool.submit(_process, s, splits[s.source_id], config, work, stages) for s in sources]
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        processes.stop_all()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _check_network(
    tried: list[Outcome], sources: Sequence[Source], outcomes: dict[str, Outcome], log_path: Path
) -> None:
    """Stop the build (BuildStopped, EXIT_NETWORK) when the first sources tried all failed to
    download with the same network error from the same host: each of them, and every source not
    tried, is recorded as a `network` failure, which the next run retries."""
    keys = {_network_key(o) for o in tried}
    if len(keys) != 1 or None in keys:
        return
    reason, host = keys.pop()
    for o in tried:
        o.reason, o.detail = "network", f"{reason}: {o.detail}"
    for s in sources:
        if s.source_id not in outcomes:
            why = f"not tried: the first {len(tried)} sources all failed with {reason} from {host}"
            outcomes[s.source_id] = Outcome(s, "", "failed", "download", "network", why)
    raise BuildStopped(
        EXIT_NETWORK,
        f"the first {len(tried)} sources all failed to download with {reason} from {host}: "
        "offline or blocked? Check the connection (for HTTP 403/429: wait, or pass --cookies) "
        f"and run the same command again (yt-dlp's log: {log_path})",
    )


def _network_key(outcome: Outcome) -> tuple[str, str] | None:
    if outcome.stage != "download" or outcome.reason not in NETWORK_REASONS:
        return None
    return outcome.reason, urlsplit(outcome.source.url).netloc


def _check_outcomes(outcomes: list[Outcome], config: BuildConfig, out: Path) -> None:
    """Raise BuildStopped unless the sources' outcomes make a corpus worth committing: some clip,
    a failure share within `max_failure_rate`, and (without `overwrite`) no fewer clips than the
    corpus already in `out`."""
    clips = sum(len(o.clips) for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    rejected = sum(o.status == "rejected" for o in outcomes)
    kept = f"{out} was left as it was"
    if clips == 0:
        raise BuildStopped(
            EXIT_NO_CLIPS,
            f"no clip was made from {len(outcomes)} sources ({failed} failed, {rejected} "
            f"rejected); {kept}",
        )
    share = failed / len(outcomes)
    if share > config.max_failure_rate:
        raise BuildStopped(
            EXIT_FAILURES,
            f"{failed} of {len(outcomes)} sources failed ({share:.0%} > --max-failure-rate "
            f"{config.max_failure_rate:g}); {kept}; run the same command to retry them, or raise "
            "--max-failure-rate",
        )
    before = _corpus_rows(out, "clips")
    if before is not None and clips < len(before) and not config.overwrite:
        raise BuildStopped(
            EXIT_FAILURES,
            f"this run made {clips} clips, fewer than the {len(before)} of the corpus in {out}, "
            f"which was kept; run the same command to retry the {failed} failed sources, or "
            "pass --overwrite",
        )


def _check_target(
    out: Path, sources: Sequence[Source], config: BuildConfig, source_list: str
) -> None:
    """Refuse (BuildStopped, EXIT_REFUSED) to build into a folder that holds anything but a
    corpus, or a corpus of another build (without `overwrite`); with `resume`, one that holds no
    earlier run."""
    begun = (out / WORK_DIR / SAMPLES_DIR).is_dir() or (out / BUILD_FILE).is_file()
    if config.resume and not begun:
        raise BuildStopped(EXIT_REFUSED, f"--resume: {out} holds no earlier run of a build")
    check_folder(out)
    if (out / BUILD_FILE).is_file() and not config.overwrite:
        why = _differences(out, sources, config, source_list)
        if why:
            raise BuildStopped(
                EXIT_REFUSED,
                f"{out} holds the corpus of another build ({why}): use --out elsewhere, or "
                "--overwrite to replace it (the same build resumes there)",
            )


def check_folder(out: Path) -> None:
    """Refuse (BuildStopped, EXIT_REFUSED) an `out` that is a file or holds anything but a corpus:
    a build replaces the whole folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BuildStopped(EXIT_REFUSED, f"{out} is a file, not a corpus folder: use another --out")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in CORPUS_ENTRIES)
    if foreign:
        raise BuildStopped(
            EXIT_REFUSED,
            f"{out} holds files that are no part of a corpus ({', '.join(foreign[:3])}): a "
            "build replaces its whole --out folder, so use another (new or empty) one",
        )


def _differences(
    out: Path, sources: Sequence[Source], config: BuildConfig, source_list: str
) -> str:
    """How the corpus in `out` differs from this build ("" when it is the same build)."""
    try:
        record = json.loads((out / BUILD_FILE).read_text())
    except (OSError, ValueError) as e:
        return f"its {BUILD_FILE} is unreadable: {e}"
    if record.get("manifest") != source_list:
        return f"source list {record.get('manifest')!r}, not {source_list!r}"
    old, new = record.get("config", {}), json.loads(json.dumps(config.to_json()))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        return "other settings: " + ", ".join(
            f"{k} {old.get(k)!r}, not {new.get(k)!r}" for k in changed[:3]
        )
    rows = _corpus_rows(out, "sources")
    ids = {s.source_id for s in sources}
    if rows is not None and {r["source_id"] for r in rows} != ids:
        return f"other sources: {len(rows)} there, {len(ids)} here"
    return ""


def _corpus_rows(out: Path, name: str) -> list[dict[str, str]] | None:
    """Rows of a manifest of the corpus in `out` (its csv), None where there is none."""
    try:
        with open(out / MANIFEST_DIR / f"{name}.csv", newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except OSError:
        return None


# --- the swap: a finished corpus replaces the old one in one step ------------------------------


def staging_dir(out: Path) -> Path:
    """Sibling of `out` where the new corpus is written before `_swap_in` (same file system)."""
    return out.parent / f".{out.name}.staging"


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover(out: Path) -> None:
    """Finish what a kill during `_swap_in` left undone: the work folder goes back into `out`,
    and where renames stand in for the exchange, the old corpus back to `out` or away."""
    old, staging = _old_dir(out), staging_dir(out)
    if old.is_dir():
        if out.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, out)
    if (staging / WORK_DIR).is_dir() and not (out / WORK_DIR).exists():
        out.mkdir(parents=True, exist_ok=True)
        os.replace(staging / WORK_DIR, out / WORK_DIR)


def _swap_in(staging: Path, out: Path, crasher: _Crasher) -> None:
    """Make the finished corpus in `staging` the one in `out`: the work folder moves along, then
    the two folders trade names in one step and the old corpus is removed. Killed at any point,
    `out` holds the old corpus or the new one, whole (`recover` puts the work folder back)."""
    os.replace(out / WORK_DIR, staging / WORK_DIR)
    crasher.done("swap")
    _exchange(staging, out)
    crasher.done("swap")
    shutil.rmtree(staging)


def _exchange(a: Path, b: Path) -> None:
    """Swap the names of two folders: atomically with Linux's renameat2(RENAME_EXCHANGE), else
    with three renames (`recover` completes them after a kill)."""
    if _RENAMEAT2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if _RENAMEAT2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(b))
    old = _old_dir(b)
    os.replace(b, old)
    os.replace(a, b)
    os.replace(old, a)


def _renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None


# --- stopping: what is kept, what it says -------------------------------------------------------


class BuildStopped(Exception):
    """The build committed no corpus (or could not write one); `code` is its exit code (see
    `EXIT_CODES`) and str(e) the one-line summary."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _stopped(code: int, message: str, outcomes: dict[str, Outcome], work: Path) -> BuildStopped:
    """BuildStopped(code, message), once the failures among `outcomes` are written to the work
    folder's failures manifest (named in the message; a full disk may prevent it)."""
    try:
        write_manifest(work, "failures", _failure_rows(outcomes.values()))
        message += f"; failures so far: {work / MANIFEST_DIR / 'failures.csv'}"
    except OSError:
        pass
    return BuildStopped(code, message)


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES})
"""errno values of an OSError that are the output's, not one source's."""
_FULL_RE = re.compile(r"No space left on device|Disk quota exceeded")


def _raise_if_output_full(message: str) -> None:
    """Raise ENOSPC when a child's error `message` says that the disk is full."""
    if _FULL_RE.search(message):
        raise OSError(errno.ENOSPC, "No space left on device (reported by a child process)")


def _output_message(error: OSError, out: Path, needed: int) -> str:
    where = Path(error.filename) if error.filename else out
    existing = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    return (
        f"cannot write {where}: {error.strerror or error} (about {needed / 1e6:,.0f} MB needed, "
        f"{free / 1e6:,.0f} MB free there); free some space (or use --out elsewhere) and run the "
        "same command again: it resumes"
    )


_BITS_PER_PIXEL = 0.1
"""Size of an H.264 clip at the default quality, before any clip of the build gives a measure
(its FLAC is counted as 16-bit stereo at 60%)."""


def _space_needed(work: Path, outcomes: dict[str, Outcome], total: int, config: BuildConfig) -> int:
    """Rough bytes that the rest of the build needs: the clips of the sources not finished yet
    (--max-clips each, at the mean size of the clips committed so far, or `_BITS_PER_PIXEL` before
    any) and the shards, which hold a copy of every clip."""
    made = sum(len(o.clips) for o in outcomes.values())
    samples = work / SAMPLES_DIR
    committed = sum(p.stat().st_size for p in samples.rglob("*") if p.is_file())
    clip = config.clip
    pixels = clip.width * clip.height * clip.fps * clip.seconds
    prior = pixels * _BITS_PER_PIXEL / 8 + clip.audio_rate * clip.seconds * 4 * 0.6
    per_clip = committed / made if made else prior
    left = (total - len(outcomes)) * clip.max_clips
    return round(per_clip * (2 * left + made))


class _LogFile(logging.FileHandler):
    """The build log: best effort, so a full disk drops its lines instead of printing tracebacks
    (the build itself then stops with one line)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


@contextlib.contextmanager
def _build_log(path: Path, verbose: bool) -> Iterator[Path]:
    """Send the toolkit's log (yt-dlp's and ffmpeg's messages among it) to the file `path`, and
    to the terminal only when `verbose`."""
    logger = logging.getLogger("landscape_av")
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [_LogFile(path, encoding="utf-8")]
    if verbose:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield path
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.level, logger.propagate = saved


# --- one source: download, probe, filter, clip --------------------------------------------------


def _process(
    source: Source,
    split: str,
    config: BuildConfig,
    work: Path,
    stages: _Stages,
) -> Outcome:
    """Download, probe, filter and clip one source (downloading and clipping in `stages` slots),
    or reuse its committed result. Rejections and probe failures are committed; download
    failures are not (they may pass on a rerun). Any other error in the source's file (a decode
    error anywhere in it, an ffmpeg failure, an unexpected exception) fails this source only: its
    download is dropped so that a rerun fetches it again, and skipped when the new download is
    the same damaged file (`DAMAGED_DIR`). Errors writing the output are the build's (OSError)."""
    committed = work / SAMPLES_DIR / source.source_id
    if (reused := _committed(source, split, work)) is not None:
        stages.advance(*STAGES)
        return reused

    def failed(stage: str, reason: str, detail: str) -> Outcome:
        detail = _ADDRESS_RE.sub("", detail)  # ffmpeg's "[mov @ 0x55...]": differs run to run
        log.warning("%s: failed at %s (%s): %s", source.source_id, stage, reason, detail)
        return Outcome(source, split, "failed", stage, reason, detail, fresh=True)

    try:
        with stages.downloading:
            fetched = download(
                source,
                work / DOWNLOADS_DIR,
                config.download,
                config.clip.max_clips * config.clip.seconds,
                config.filter.min_height,
                lambda e: stages.network.give_up(e.reason, source.url),
            )
    except DownloadError as e:
        _raise_if_output_full(str(e))
        stages.advance(*STAGES)  # the source is done with: count it in the later bars too
        return failed("download", e.reason, str(e))
    stages.downloaded(fetched.path)
    damaged = _Damaged(work / DAMAGED_DIR / f"{source.source_id}.json", fetched.path)
    if (seen := damaged.seen_before()) is not None:
        stages.advance("probe", "clip")
        return failed(*seen)
    staging = work / SAMPLES_DIR / f".tmp-{source.source_id}"
    try:
        outcome = _examine(source, split, config, fetched, staging, stages)
    except _SourceError as e:
        shutil.rmtree(staging, ignore_errors=True)
        outcome = failed(e.stage, e.reason, e.detail)
        damaged.remember(outcome)
        stages.advance("clip")
        return outcome
    stages.commit(outcome, committed, staging if outcome.clips else None)
    if not config.keep_downloads:  # committed: its download is not needed any more
        fetched.path.unlink(missing_ok=True)
    return outcome


def _committed(source: Source, split: str, work: Path) -> Outcome | None:
    """The committed result of `source` in `work`, if any for its current source-list row (one
    for an older row is removed: the source is redone)."""
    committed = work / SAMPLES_DIR / source.source_id
    record = committed / SOURCE_RECORD
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    if saved["row"] == _row(source, split):
        return _load_outcome(source, split, saved)
    shutil.rmtree(committed)
    return None


class _SourceError(Exception):
    """One source's failure at `stage`, with its reason code and detail."""

    def __init__(self, stage: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.stage, self.reason, self.detail = stage, reason, detail


@contextlib.contextmanager
def _failing_as(stage: str) -> Iterator[None]:
    """Turn any error of one source's file in the block into a _SourceError of `stage`: a PyAV
    decode error is `decode_error`, an ffmpeg failure `ffmpeg`, an inexact clip `inexact`,
    anything else `error`. Errors writing the output (`_OUTPUT_ERRNOS`) stay the build's."""
    try:
        yield
    except (_SourceError, processes.Stopped):
        raise
    except av.FFmpegError as e:
        raise _SourceError(stage, "decode_error", str(e)) from e
    except FFmpegError as e:
        _raise_if_output_full(str(e))
        raise _SourceError(stage, "ffmpeg", str(e)) from e
    except ClipError as e:
        raise _SourceError(stage, "inexact", str(e)) from e
    except OSError as e:
        if e.errno in _OUTPUT_ERRNOS:
            raise
        raise _SourceError(stage, "error", f"{type(e).__name__}: {e}") from e
    except Exception as e:  # whatever else one source's file makes a library raise
        raise _SourceError(stage, "error", f"{type(e).__name__}: {e}") from e


def _examine(
    source: Source,
    split: str,
    config: BuildConfig,
    fetched: Downloaded,
    staging: Path,
    stages: _Stages,
) -> Outcome:
    """Probe, filter and clip a downloaded source (its clips into `staging`); the outcome to
    commit: clipped, rejected, or a probe failure. Raises _SourceError when the source fails
    after its probe."""
    try:
        with _failing_as("probe"):
            facts = probe(fetched.path)
    except ProbeError as e:
        stages.advance("probe")
        return Outcome(source, split, "failed", "probe", e.reason, str(e), fresh=True)
    stages.advance("probe")

    # media time t in the downloaded file is source time fetched.offset + t
    start = max(0.0, (source.start or 0.0) - fetched.offset)
    end = min(facts.duration, facts.audio_duration if facts.has_audio else facts.duration)
    if source.end is not None:
        end = min(end, source.end - fetched.offset)
    info = _probe_info(facts) | {"start": fetched.offset + start, "end": fetched.offset + end}

    def rejected(verdict: Verdict) -> Outcome:
        info.update(loudness_db=verdict.loudness_db, motion=verdict.motion)
        return Outcome(
            source, split, "rejected", "filter", verdict.reason, verdict.detail, info, fresh=True
        )

    with _failing_as("filter"):
        verdict = check(fetched.path, facts, start, end, config.filter, config.clip.seconds)
    if not verdict.kept:
        return rejected(verdict)

    opts = config.clip
    count = clip_count(end - start, opts)
    keys = [sample_key(source.source_id, i) for i in range(count)]
    shutil.rmtree(staging, ignore_errors=True)
    with _failing_as("clip"), stages.clipping:
        results = cut_clips(fetched.path, start, count, keys, staging, opts)
    verdict = check_motion(verdict, sum(c.motion for c in results) / len(results), config.filter)
    if not verdict.kept:
        shutil.rmtree(staging)
        return rejected(verdict)
    info.update(loudness_db=verdict.loudness_db, motion=verdict.motion)
    keys = keys[: len(results)]  # trailing clips may have been dropped (a short source)
    info["end"] = info["start"] + len(results) * opts.seconds
    metas = []
    for key, clip in zip(keys, results, strict=True):
        meta = _sample_meta(source, split, key, clip, info["start"], opts)
        (staging / f"{key}.json").write_bytes(_meta_bytes(meta))
        metas.append(meta)
    return Outcome(source, split, "clipped", info=info, clips=metas, fresh=True)


class _Damaged:
    """The memory of a source whose download failed after it was fetched: the file's sha256 and
    the failure, so that a rerun that downloads the very same bytes skips it (and says so)."""

    def __init__(self, record: Path, download: Path) -> None:
        self.record, self.download = record, download

    def seen_before(self) -> tuple[str, str, str] | None:
        """(stage, reason, detail) when the download is the damaged file of an earlier run."""
        try:
            saved = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        if saved["sha256"] != file_sha256(self.download):
            self.record.unlink()  # a different download: try it
            return None
        self._drop_download()
        detail = f"the same damaged download as before (sha256 {saved['sha256'][:16]}): skipped"
        return saved["stage"], saved["reason"], f"{detail}; {saved['detail']}"

    def remember(self, outcome: Outcome) -> None:
        if not self.download.is_file():
            return
        self.record.parent.mkdir(parents=True, exist_ok=True)
        saved = {"sha256": file_sha256(self.download)}
        saved |= {"stage": outcome.stage, "reason": outcome.reason, "detail": outcome.detail}
        atomic_write(self.record, json.dumps(saved, indent=1) + "\n")
        self._drop_download()

    def _drop_download(self) -> None:
        """Remove the download and its record, so that the next run fetches it again."""
        self.download.unlink(missing_ok=True)
        name = self.download.name.partition(".")[0]
        (self.download.parent / f"{name}{RECORD_SUFFIX}").unlink(missing_ok=True)


def _probe_info(facts: Probe) -> dict[str, Any]:
    return {
        "duration": facts.duration,
        "width": facts.width,
        "height": facts.height,
        "fps": facts.fps,
        "rotation": facts.rotation,
        "video_codec": facts.video_codec,
        "audio_codec": facts.audio_codec,
        "sample_rate": facts.sample_rate,
        "channels": facts.channels,
    }


def _sample_meta(
    source: Source, split: str, key: str, clip, span_start: float, opts: ClipOptions
) -> SampleMeta:
    start = round(span_start + clip.start, 6)
    return SampleMeta(
        key=key,
        **{"class": source.class_name},
        label=source.label,
        source_id=source.source_id,
        url=source.url,
        split=split,
        clip_index=clip.index,
        start=start,
        end=round(start + opts.seconds, 6),
        duration=opts.seconds,
        fps=float(opts.fps),
        width=opts.width,
        height=opts.height,
        num_frames=clip.num_frames,
        sample_rate=opts.audio_rate,
        channels=opts.audio_channels,
        num_samples=clip.num_samples,
        loudness_db=round(clip.loudness_db, 4),
        motion=round(clip.motion, 6),
        license=source.license,
        attribution=source.attribution,
        sha256={ext: file_sha256(path) for ext, path in sorted(clip.files.items())},
    )


def _meta_bytes(meta: SampleMeta) -> bytes:
    return (json.dumps(meta, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _commit(outcome: Outcome, committed: Path, staging: Path | None) -> None:
    """Make a source's result final: its record is written into the staging folder, which is then
    renamed to `committed` in one step."""
    if staging is None:
        staging = committed.with_name(f".tmp-{committed.name}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    record = {
        "row": _row(outcome.source, outcome.split),
        "status": outcome.status,
        "stage": outcome.stage,
        "reason": outcome.reason,
        "detail": outcome.detail,
        "info": outcome.info,
        "clips": outcome.clips,
    }
    (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(committed, ignore_errors=True)
    os.replace(staging, committed)


def _row(source: Source, split: str) -> dict[str, Any]:
    """What of a source's source-list row its committed result depends on."""
    return {
        "url": source.url,
        "class": source.class_name,
        "label": source.label,
        "start": source.start,
        "end": source.end,
        "split": split,
        "license": source.license,
        "attribution": source.attribution,
    }


def _load_outcome(source: Source, split: str, record: dict[str, Any]) -> Outcome:
    return Outcome(
        source,
        split,
        record["status"],
        record["stage"],
        record["reason"],
        record["detail"],
        record["info"],
        record["clips"],
    )


# --- shards -------------------------------------------------------------------------------------


def _write_shards(
    outcomes: list[Outcome],
    config: BuildConfig,
    samples_dir: Path,
    out: Path,
    staging: Path,
    progress,
    crasher: _Crasher,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Pack every clip into shards in `staging` (split order, then key order); reuse shards
    already written there or in the finished corpus in `out` with the same samples; remove shard
    files no longer planned. Returns the shards manifest rows and each sample key's shard name."""
    samples = sorted(
        (
            SampleFiles(
                meta["key"],
                meta["split"],
                {
                    ext: samples_dir / meta["source_id"] / f"{meta['key']}.{ext}"
                    for ext in ("flac", "jpg", "json", "mp4")
                },
            )
            for o in outcomes
            for meta in o.clips
        ),
        key=lambda s: (SPLITS.index(s.split), s.key),
    )
    plans = plan_shards(samples, config.shard.max_bytes, config.shard.max_samples)
    data_dir = staging / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    records_dir = samples_dir.parent / SHARD_RECORDS_DIR
    records_dir.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("shard", total=len(samples), bytes=0)
    rows, moved = [], 0
    for plan in plans:
        path, finished = data_dir / plan.name, out / DATA_DIR / plan.name
        nbytes, digest, written = _reuse_or_write(plan, path, finished, records_dir)
        moved += nbytes
        progress.update(task, advance=len(plan.samples), bytes=moved)
        if written:
            crasher.done("shard")
        rows.append(
            {
                "shard": plan.name,
                "split": plan.split,
                "index": plan.index,
                "samples": len(plan.samples),
                "bytes": nbytes,
                "sha256": digest,
                "first_key": plan.samples[0].key,
                "last_key": plan.samples[-1].key,
            }
        )
    planned = {p.name for p in plans}
    for stale in data_dir.glob("*.tar"):
        if stale.name not in planned:
            stale.unlink()
    return rows, {s.key: p.name for p in plans for s in p.samples}


def _reuse_or_write(
    plan: ShardPlan, path: Path, finished: Path, records_dir: Path
) -> tuple[int, str, bool]:
    """(bytes, sha256, whether it was written now) of a shard at `path`: kept when its record says
    it holds exactly these samples, else linked from the `finished` corpus's shard when that has
    the recorded bytes, else written."""
    record_path = records_dir / f"{plan.name}.json"
    keys = [s.key for s in plan.samples]
    # a sample's json holds the hashes of its other members: its own hash covers the whole sample
    hashes = [file_sha256(s.members["json"]) for s in plan.samples]
    try:
        record = json.loads(record_path.read_text())
        if record["keys"] == keys and record["json_sha256"] == hashes:
            if path.is_file() and path.stat().st_size == record["bytes"]:
                return record["bytes"], record["sha256"], False
            if finished.is_file() and file_sha256(finished) == record["sha256"]:
                _link(finished, path)
                return record["bytes"], record["sha256"], False
    except (OSError, ValueError, KeyError):
        pass
    nbytes, digest = write_shard(plan, path)
    record = {"keys": keys, "json_sha256": hashes, "bytes": nbytes, "sha256": digest}
    atomic_write(record_path, json.dumps(record) + "\n")
    return nbytes, digest, True


def _link(source: Path, path: Path) -> None:
    """`path` becomes a hard link to `source` (a copy where links are not possible)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, path)


# --- manifests and build.json -------------------------------------------------------------------


def _write_manifests(
    folder: Path,
    samples_dir: Path,
    outcomes: list[Outcome],
    shard_rows: list[dict[str, Any]],
    key_shard: dict[str, str],
) -> None:
    """The four manifests of the corpus in `folder`, its clips' files in `samples_dir`."""
    sources, clips = [], []
    for o in outcomes:
        s = o.source
        base = {"source_id": s.source_id, "url": s.url, "class": s.class_name}
        row = (
            base
            | o.info
            | {
                "label": s.label,
                "split": o.split,
                "status": o.status,
                "stage": o.stage,
                "reason": o.reason,
                "num_clips": len(o.clips),
                "license": s.license,
                "attribution": s.attribution,
            }
        )
        sources.append({c: row.get(c) for c in manifest_columns("sources")})
    for o in outcomes:
        for meta in o.clips:
            member = samples_dir / meta["source_id"]
            sizes = sum(
                (member / f"{meta['key']}.{ext}").stat().st_size
                for ext in ("mp4", "flac", "jpg", "json")
            )
            clips.append(
                {c: meta.get(c) for c in manifest_columns("clips") if c in meta}
                | {
                    "shard": key_shard[meta["key"]],
                    "bytes": sizes,
                    "sha256_mp4": meta["sha256"]["mp4"],
                    "sha256_flac": meta["sha256"]["flac"],
                    "sha256_jpg": meta["sha256"]["jpg"],
                    "sha256_json": file_sha256(member / f"{meta['key']}.json"),
                }
            )
    order = {row["shard"]: i for i, row in enumerate(shard_rows)}
    clips.sort(key=lambda c: (order[c["shard"]], c["key"]))
    write_manifest(folder, "sources", sources)
    write_manifest(folder, "clips", clips)
    write_manifest(folder, "shards", shard_rows)
    write_manifest(folder, "failures", _failure_rows(outcomes))


def _failure_rows(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """Failures manifest rows of the sources that gave no clip."""
    return [
        {"source_id": o.source.source_id, "url": o.source.url, "class": o.source.class_name}
        | {"stage": o.stage, "reason": o.reason, "detail": o.detail}
        for o in outcomes
        if o.status != "clipped"
    ]


def _write_build_json(
    out: Path, config: BuildConfig, source_list: str, n_sources: int, classes: Sequence[str]
) -> None:
    from importlib.metadata import version

    record = {
        "landscape_av": __version__,
        "manifest": source_list,  # build.json's name for it since the first corpora
        "sources": n_sources,
        "classes": list(classes),  # the class vocabulary: label i is classes[i]
        "config": config.to_json(),
        "tools": {
            "ffmpeg": _ffmpeg_version(),
            **{name: version(name) for name in ("av", "yt-dlp", "webdataset", "pyarrow")},
        },
    }
    atomic_write(out / BUILD_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _ffmpeg_version() -> str:
    import subprocess

    from landscape_av.ffmpeg import ffmpeg_exe

    line = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True
    ).stdout.splitlines()
    return line[0] if line else "unknown"
