"""The build: source list -> download -> probe -> filter -> clips -> shards -> manifests -> card.

Every source goes through the first four stages in a worker pool; its finished result (clips, or a
rejection) is committed as one folder `OUT/.work/samples/<source_id>/`, renamed into place, so a
build killed at any point (Ctrl-C or kill -9) and run again reuses every finished source and redoes
only the unfinished ones. Up to `workers` sources are clipped at once (each clip encoder runs on one
thread, for reproducible bytes: `clip.X264_THREADS`), and meanwhile up to `downloads` more are
fetched, probed and filtered, so that encoding does not wait for the network. Sharding then packs
the committed samples in a fixed order, so shards and manifests come out byte-identical to those of
an uninterrupted build, whatever the number of workers.
Failures that may pass (download, ffmpeg) are not committed and are retried on the next run; each
run records its failures in the failures manifest and goes on.

`LANDSCAPE_AV_CRASH_AT=<stage>:<n>` (stage: download, clip or shard) makes the process kill itself
with SIGKILL right after its n-th completion of that stage: the resume tests use it to crash a real
build at a chosen point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from landscape_av import __version__
from landscape_av.classes import CLASSES
from landscape_av.corpus.card import write_card
from landscape_av.corpus.manifests import write_manifest
from landscape_av.ffmpeg import FFmpegError
from landscape_av.files import atomic_write, file_sha256
from landscape_av.pipeline.clip import ClipError, ClipOptions, clip_count, cut_clips
from landscape_av.pipeline.download import DownloadError, DownloadOptions, download
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
from landscape_av.progress import print_summary, stage_progress
from landscape_av.schema import (
    BUILD_FILE,
    DATA_DIR,
    DEFAULT_OUT,
    SPLITS,
    WORK_DIR,
    SampleMeta,
    manifest_columns,
    sample_key,
)
from landscape_av.sources.source_list import Source
from landscape_av.sources.split import assign_splits

CRASH_ENV = "LANDSCAPE_AV_CRASH_AT"
_ADDRESS_RE = re.compile(r" @ 0x[0-9a-f]+")
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
        Path(DEFAULT_OUT), path="folder", show=DEFAULT_OUT, recorded=False, help="Corpus folder."
    )
    workers: int = setting(
        factory=_cores,
        low=1,
        show="CPU cores",
        recorded=False,
        help="Sources clipped at once (each encoder uses one core).",
    )
    downloads: int = setting(  # network-bound; sites throttle many at once
        2, low=1, recorded=False, help="Sources fetched at once, while others are clipped."
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

    def __init__(self, progress: Progress, total: int, config: BuildConfig, crasher: _Crasher):
        self.progress, self.crasher = progress, crasher
        self.tasks = {name: progress.add_task(name, total=total, bytes=0) for name in STAGES}
        self.moved: Counter[str] = Counter()
        self.lock = threading.Lock()  # progress counts
        self.committing = threading.Lock()  # a crash after n commits leaves exactly n
        self.downloading = threading.BoundedSemaphore(config.downloads)
        self.clipping = threading.BoundedSemaphore(config.workers)

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        """Count one more source done with each of `stages` in the progress bars."""
        with self.lock:
            for stage in stages:
                self.moved[stage] += nbytes
                self.progress.update(self.tasks[stage], advance=1, bytes=self.moved[stage])

    def downloaded(self, path: Path) -> None:
        self.advance("download", nbytes=path.stat().st_size)
        self.crasher.done("download")

    def commit(self, outcome: Outcome, committed: Path, staging: Path | None) -> Outcome:
        """Make a source's result final (`_commit`) and count it done with the clip stage."""
        with self.committing:
            _commit(outcome, committed, staging)
            self.crasher.done("clip")
        self.advance("clip", nbytes=sum(p.stat().st_size for p in committed.iterdir()))
        return outcome


def build(sources: Sequence[Source], config: BuildConfig, source_list: str = "") -> BuildResult:
    """Build the corpus of `sources` into `config.out` (resuming any earlier run there).
    `source_list` names the list of the sources in build.json and the card."""
    out = Path(config.out)
    work = out / WORK_DIR
    samples_dir = work / SAMPLES_DIR
    _reset_stale_samples(samples_dir, config)
    splits = assign_splits(sources, config.test_fraction, config.split_salt)
    crasher = _Crasher()
    outcomes: dict[str, Outcome] = {}
    with stage_progress(config.quiet) as progress:
        stages = _Stages(progress, len(sources), config, crasher)
        with ThreadPoolExecutor(max_workers=config.workers + config.downloads) as pool:
            futures = {
                pool.submit(_process, s, splits[s.source_id], config, work, stages): s.source_id
                for s in sources
            }
            try:
                for future in as_completed(futures):
                    outcomes[futures[future]] = future.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        ordered = [outcomes[s.source_id] for s in sources]
        shard_rows, key_shard = _write_shards(ordered, config, out, progress, crasher)
    _write_manifests(out, ordered, shard_rows, key_shard)
    _write_build_json(out, config, source_list, len(sources))
    write_card(out)
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


# --- one source: download, probe, filter, clip --------------------------------------------------


def _process(
    source: Source,
    split: str,
    config: BuildConfig,
    work: Path,
    stages: _Stages,
) -> Outcome:
    """Download, probe, filter and clip one source (downloading and clipping in `stages` slots),
    or reuse its committed result. Rejections and probe failures are committed; download and
    ffmpeg failures are not (they may pass on a rerun)."""
    committed = work / SAMPLES_DIR / source.source_id
    record = committed / SOURCE_RECORD
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved["row"] == _row(source, split):
            stages.advance(*STAGES)
            return _load_outcome(source, split, saved)
        shutil.rmtree(committed)  # the source-list row changed since: redo the source

    def failed(stage: str, reason: str, detail: str) -> Outcome:
        detail = _ADDRESS_RE.sub("", detail)  # ffmpeg's "[mov @ 0x55...]": differs run to run
        return Outcome(source, split, "failed", stage, reason, detail)

    try:
        with stages.downloading:
            fetched = download(
                source,
                work / DOWNLOADS_DIR,
                config.download,
                config.clip.max_clips * config.clip.seconds,
                config.filter.min_height,
            )
    except DownloadError as e:
        stages.advance(*STAGES)  # the source is done with: count it in the later bars too
        return failed("download", e.reason, str(e))
    stages.downloaded(fetched.path)

    def final(outcome: Outcome, staging: Path | None = None) -> Outcome:
        """Commit the source's result; its download is not needed any more."""
        stages.commit(outcome, committed, staging)
        if not config.keep_downloads:
            fetched.path.unlink(missing_ok=True)
        return outcome

    try:
        facts = probe(fetched.path)
    except ProbeError as e:
        stages.advance("probe")
        return final(failed("probe", e.reason, str(e)))
    stages.advance("probe")

    # media time t in the downloaded file is source time fetched.offset + t
    start = max(0.0, (source.start or 0.0) - fetched.offset)
    end = min(facts.duration, facts.audio_duration if facts.has_audio else facts.duration)
    if source.end is not None:
        end = min(end, source.end - fetched.offset)
    info = _probe_info(facts) | {"start": fetched.offset + start, "end": fetched.offset + end}

    def rejected(verdict: Verdict) -> Outcome:
        info.update(loudness_db=verdict.loudness_db, motion=verdict.motion)
        return final(
            Outcome(source, split, "rejected", "filter", verdict.reason, verdict.detail, info)
        )

    verdict = check(fetched.path, facts, start, end, config.filter, config.clip.seconds)
    if not verdict.kept:
        return rejected(verdict)

    opts = config.clip
    count = clip_count(end - start, opts)
    keys = [sample_key(source.source_id, i) for i in range(count)]
    staging = work / SAMPLES_DIR / f".tmp-{source.source_id}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with stages.clipping:
            results = cut_clips(fetched.path, start, count, keys, staging, opts)
    except (FFmpegError, ClipError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        stages.advance("clip")
        return failed("clip", "ffmpeg" if isinstance(e, FFmpegError) else "inexact", str(e))
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
    return final(Outcome(source, split, "clipped", info=info, clips=metas), staging)


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
    outcomes: list[Outcome], config: BuildConfig, out: Path, progress, crasher: _Crasher
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Pack every clip into shards (split order, then key order); reuse shards already written
    with the same samples; remove shard files no longer planned. Returns the shards manifest rows
    and each sample key's shard name."""
    samples_dir = out / WORK_DIR / SAMPLES_DIR
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
    data_dir = out / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    records_dir = out / WORK_DIR / SHARD_RECORDS_DIR
    records_dir.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("shard", total=len(samples), bytes=0)
    rows, moved = [], 0
    for plan in plans:
        nbytes, digest, written = _reuse_or_write(plan, data_dir / plan.name, records_dir)
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


def _reuse_or_write(plan: ShardPlan, path: Path, records_dir: Path) -> tuple[int, str, bool]:
    """(bytes, sha256, whether it was written now) of a shard: an existing file is kept when its
    record says it holds exactly these samples."""
    record_path = records_dir / f"{plan.name}.json"
    keys = [s.key for s in plan.samples]
    # a sample's json holds the hashes of its other members: its own hash covers the whole sample
    hashes = [file_sha256(s.members["json"]) for s in plan.samples]
    try:
        record = json.loads(record_path.read_text())
        if (
            record["keys"] == keys
            and record["json_sha256"] == hashes
            and path.stat().st_size == record["bytes"]
        ):
            return record["bytes"], record["sha256"], False
    except (OSError, ValueError, KeyError):
        pass
    nbytes, digest = write_shard(plan, path)
    record = {"keys": keys, "json_sha256": hashes, "bytes": nbytes, "sha256": digest}
    atomic_write(record_path, json.dumps(record) + "\n")
    return nbytes, digest, True


# --- manifests and build.json -------------------------------------------------------------------


def _write_manifests(
    out: Path, outcomes: list[Outcome], shard_rows: list[dict[str, Any]], key_shard: dict[str, str]
) -> None:
    sources, clips, failures = [], [], []
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
        if o.status != "clipped":
            failures.append(base | {"stage": o.stage, "reason": o.reason, "detail": o.detail})
    samples_dir = out / WORK_DIR / SAMPLES_DIR
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
    write_manifest(out, "sources", sources)
    write_manifest(out, "clips", clips)
    write_manifest(out, "shards", shard_rows)
    write_manifest(out, "failures", failures)


def _write_build_json(out: Path, config: BuildConfig, source_list: str, n_sources: int) -> None:
    from importlib.metadata import version

    record = {
        "landscape_av": __version__,
        "manifest": source_list,  # build.json's name for it since the first corpora
        "sources": n_sources,
        "classes": list(CLASSES),
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
