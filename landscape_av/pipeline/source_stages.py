"""One source's stages: download -> probe -> filter -> clip -> motion -> curate, ending in an
`Outcome`.

`process` runs them for one source wherever an engine puts it (a thread, a Ray task), through the
`StageHooks` the engine gives it: its download and clip slots, the network watch, the progress
bars and the commit of the result. The stages after the download are small functions over one
`Examined` record (`EXAMINE`): each reads what the stages before it found, adds its own, and either
lets the source go on (None) or ends it with an outcome (a rejection); a stage
that consumes the clip stage's decode (a per-clip measure) goes after `clip_stage`.

No error of one source stops the build: whatever its file makes a stage raise becomes that
source's failure (`failing_as`, `SourceError`). Rejections and lost sources (a video gone from
its site) are committed; download failures are not (they may pass on a rerun). Any other error in
the source's file (a decode error anywhere in it, an ffmpeg failure, an unexpected exception) fails
this source only: its download is dropped so that a rerun fetches it again, and skipped when the
new download is the same damaged file (`sample_store.Damaged`). Errors writing the output are the
build's (OSError).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import av

from landscape_av import processes
from landscape_av.ffmpeg import FFmpegError
from landscape_av.files import file_sha256
from landscape_av.pipeline.clip import (
    CLIP_EXTS,
    ClipError,
    ClipOptions,
    ClipResult,
    ClipTooLarge,
    DamagedSource,
    clip_count,
    cut_clips,
)
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.curate import curate
from landscape_av.pipeline.disk_space import OUTPUT_ERRNOS, raise_if_output_full
from landscape_av.pipeline.download import Downloaded, DownloadError, download
from landscape_av.pipeline.filters import Verdict, check, check_motion
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.probe import Probe, ProbeError, probe
from landscape_av.pipeline.sample_store import Damaged, SampleStore
from landscape_av.schema import SampleMeta, sample_key
from landscape_av.sources.source_list import Source

STAGES = ("download", "probe", "clip")
"""Per-source stages, each with its progress bar (shards get their own after them)."""
DOWNLOADS_DIR = "downloads"
"""Folder of the work folder holding the downloads."""
_ADDRESS_RE = re.compile(r" @ 0x[0-9a-f]+")
log = logging.getLogger(__name__)


class StageHooks(Protocol):
    """What one source's stages need of the engine that runs them."""

    downloading: AbstractContextManager[Any]
    """Held while the source downloads (the engine's bound on downloads at once)."""
    clipping: AbstractContextManager[Any]
    """Held while the source's clips are encoded (the engine's bound on encoders at once)."""

    def give_up(self, reason: str, url: str) -> bool:
        """Whether a failed download attempt with network error `reason` should not be retried
        (`network.NetworkWatch`)."""
        ...

    def downloaded(self, path: Path) -> None:
        """The source's download `path` is there."""
        ...

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        """The source is done with each of `stages` (`STAGES`)."""
        ...

    def commit(self, outcome: Outcome, staging: Path | None) -> Outcome:
        """Make the source's result final (`SampleStore.commit`, its files in `staging`)."""
        ...


class SourceError(Exception):
    """One source's failure at `stage`, with its reason code and detail."""

    def __init__(self, stage: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.stage, self.reason, self.detail = stage, reason, detail


def process(
    source: Source, split: str, config: BuildConfig, work: Path, hooks: StageHooks
) -> Outcome:
    """Download, probe, filter and clip one source into the work folder `work` (downloading and
    clipping in `hooks`' slots), and commit its result there unless it may pass on a rerun (see
    the module doc)."""
    store = SampleStore(work)

    def failed(stage: str, reason: str, detail: str, status: str = "failed") -> Outcome:
        detail = _ADDRESS_RE.sub("", detail)  # ffmpeg's "[mov @ 0x55...]": differs run to run
        detail = portable(detail, work)
        log.warning("%s: %s at %s (%s): %s", source.source_id, status, stage, reason, detail)
        return Outcome(source, split, status, stage, reason, detail)

    try:
        with hooks.downloading:
            fetched = download(
                source,
                work / DOWNLOADS_DIR,
                config.download,
                config.clip.max_clips * config.clip.seconds,
                config.filter.min_height,
                lambda e: hooks.give_up(e.reason, source.url),
            )
    except DownloadError as e:
        raise_if_output_full(str(e))
        hooks.advance(*STAGES)  # the source is done with: count it in the later bars too
        if e.lost:  # gone from its site: kept, not retried (`--retry-lost`)
            return hooks.commit(failed("download", e.reason, str(e), status="lost"), None)
        return failed("download", e.reason, str(e))
    hooks.downloaded(fetched.path)
    damaged = Damaged(store.damaged(source.source_id), fetched.path)
    if (seen := damaged.seen_before()) is not None:
        hooks.advance("probe", "clip")
        return failed(*seen)
    staging = store.staging(source.source_id)
    try:
        outcome = examine(Examined(source, split, config, fetched, staging), hooks)
    except SourceError as e:
        shutil.rmtree(staging, ignore_errors=True)
        outcome = failed(e.stage, e.reason, e.detail)
        damaged.remember(outcome)
        hooks.advance("clip")
        return outcome
    hooks.commit(outcome, staging if outcome.clips else None)
    if not config.keep_downloads:  # committed: its download is not needed any more
        fetched.path.unlink(missing_ok=True)
    return outcome


def portable(detail: str, work: Path) -> str:
    """`detail` with the work folder's path taken off the paths in it (`downloads/x.mp4`): a
    failure's detail goes into the corpus, which names no path of the building machine, and
    reads the same whatever the output folder or the node that ran the source."""
    forms = {str(work), str(work.absolute()), str(work.resolve())}
    for form in sorted(forms, key=len, reverse=True):
        detail = detail.replace(form + os.sep, "").replace(form, ".")
    return detail


# --- after the download: one record, small stages -----------------------------------------------


@dataclass
class Examined:
    """What the stages know of one downloaded source so far."""

    source: Source
    split: str
    config: BuildConfig
    fetched: Downloaded
    staging: Path  # where its clips are written, to be committed
    facts: Probe | None = None  # the probe's
    start: float = 0.0  # the span [start, end) of the file (media time) that clips come from
    end: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # for the sources manifest
    verdict: Verdict = field(default_factory=lambda: Verdict(None))  # the filter's
    keys: list[str] = field(default_factory=list)  # of the clips, as cut (then as kept)
    clips: list[ClipResult] = field(default_factory=list)
    cut: int = 0  # clips cut (curation may reject some of them)
    speech: dict[str, float] = field(default_factory=dict)  # by key, where measured
    rejected_clips: list[dict[str, Any]] = field(default_factory=list)  # by curation

    def rejected(self) -> Outcome:
        """The outcome of a source that `verdict` rejects."""
        v = self.verdict
        self.info.update(loudness_db=v.loudness_db, motion=v.motion)
        reason = v.reason or ""
        return Outcome(self.source, self.split, "rejected", "filter", reason, v.detail, self.info)


Stage = Callable[[Examined, StageHooks], Outcome | None]
"""A stage after the download: None lets the source go on, an outcome ends it there."""


def probe_stage(e: Examined, hooks: StageHooks) -> Outcome | None:
    """Probe the download; the span that clips may come from (within the source-list row's
    start/end, where both video and audio run). What the probe finds of the source itself is a
    rejection, committed: no video stream (`no_video`), nothing from the row's start on (a start
    beyond the end: `too_short`); a file it cannot read fails as a damaged download."""
    with failing_as("probe"):
        try:
            facts = probe(e.fetched.path)
        except ProbeError as err:
            hooks.advance("probe")
            if err.reason == "no_video":
                e.verdict = Verdict("no_video", "the file has no video stream")
                return e.rejected()
            if err.reason == "before_start" and e.source.start:
                why = f"start {e.source.start:g} s is beyond the end of the video: {err}"
                e.verdict = Verdict("too_short", why)
                return e.rejected()
            raise SourceError("probe", err.reason, str(err)) from err
    hooks.advance("probe")
    # media time t in the downloaded file is source time fetched.offset + t
    offset = e.fetched.offset
    start = max(0.0, (e.source.start or 0.0) - offset)
    end = min(facts.duration, facts.audio_duration if facts.has_audio else facts.duration)
    if e.source.end is not None:
        end = min(end, e.source.end - offset)
    e.facts, e.start, e.end = facts, start, end
    e.info = probe_info(facts) | {"start": offset + start, "end": offset + end}
    return None


def filter_stage(e: Examined, hooks: StageHooks) -> Outcome | None:
    """Judge the span on everything but motion (`filters.check`)."""
    assert e.facts is not None
    with failing_as("filter"):
        e.verdict = check(
            e.fetched.path, e.facts, e.start, e.end, e.config.filter, e.config.clip.seconds
        )
    return None if e.verdict.kept else e.rejected()


def clip_stage(e: Examined, hooks: StageHooks) -> Outcome | None:
    """Cut the clips into the staging folder with one decode of the span (in a clip slot)."""
    opts = e.config.clip
    count = clip_count(e.end - e.start, opts)
    keys = [sample_key(e.source.source_id, i) for i in range(count)]
    shutil.rmtree(e.staging, ignore_errors=True)
    with failing_as("clip"), hooks.clipping:
        e.clips = cut_clips(
            e.fetched.path, e.start, count, keys, e.staging, opts, e.config.curate.taps()
        )
    e.keys = keys[: len(e.clips)]  # trailing clips may have been dropped (a short source)
    e.cut = len(e.clips)
    return None


def motion_stage(e: Examined, hooks: StageHooks) -> Outcome | None:
    """The frozen check, on the motion that the clip stage measured on its decode."""
    motion = sum(c.motion for c in e.clips) / len(e.clips)
    e.verdict = check_motion(e.verdict, motion, e.config.filter)
    if not e.verdict.kept:
        shutil.rmtree(e.staging)
        return e.rejected()
    return None


def curate_stage(e: Examined, hooks: StageHooks) -> Outcome | None:
    """Curation (`curate`, with --speech / --shots), on the clip stage's decode: the clips it
    rejects are removed and recorded with their reasons; a source left without clips is rejected
    with the first of them."""
    opts = e.config.curate
    if not opts.on:
        return None
    with failing_as("filter"):
        result = curate(e.clips, opts, e.config.clip)
    if opts.shots:
        fps = e.config.clip.fps
        e.info["shot_cuts"] = " ".join(f"{e.info['start'] + f / fps:.3f}" for f, _ in result.cuts)
        read, total = result.windows
        log.info("%s: TransNetV2 read %d of %d windows", e.source.source_id, read, total)
    kept = []
    for key, clip, verdict in zip(e.keys, e.clips, result.verdicts, strict=True):
        if opts.speech:
            e.speech[key] = verdict.speech
        if verdict.reason is None:
            kept.append((key, clip))
            continue
        e.rejected_clips.append(
            {"key": key, "clip_index": clip.index, "reason": verdict.reason}
            | {"detail": verdict.detail, "speech": None if not opts.speech else verdict.speech}
        )
        for ext in CLIP_EXTS:
            (e.staging / f"{key}.{ext}").unlink(missing_ok=True)
    if not kept:
        shutil.rmtree(e.staging)
        first = e.rejected_clips[0]
        each = "; ".join(f"{r['key']}: {r['detail']}" for r in e.rejected_clips)
        e.info.update(loudness_db=e.verdict.loudness_db, motion=e.verdict.motion)
        detail = f"all {len(e.rejected_clips)} clips rejected: {each}"
        reason = first["reason"]
        return Outcome(
            e.source, e.split, "rejected", "filter", reason, detail, e.info, [], e.rejected_clips
        )
    e.keys, e.clips = [k for k, _ in kept], [c for _, c in kept]
    return None


EXAMINE: tuple[Stage, ...] = (probe_stage, filter_stage, clip_stage, motion_stage, curate_stage)
"""The stages after the download, in order."""


def examine(e: Examined, hooks: StageHooks) -> Outcome:
    """Run the `EXAMINE` stages on a downloaded source; the outcome to commit: clipped (each
    clip's metadata written beside its files), rejected, or a probe failure. Raises SourceError
    when the source fails after its probe."""
    for stage in EXAMINE:
        if (outcome := stage(e, hooks)) is not None:
            return outcome
    opts = e.config.clip
    e.info.update(loudness_db=e.verdict.loudness_db, motion=e.verdict.motion)
    e.info["end"] = e.info["start"] + e.cut * opts.seconds
    metas = []
    for key, clip in zip(e.keys, e.clips, strict=True):
        meta = sample_meta(e.source, e.split, key, clip, e.info["start"], opts)
        if key in e.speech:
            meta["speech"] = e.speech[key]  # type: ignore[typeddict-unknown-key]
        (e.staging / f"{key}.json").write_bytes(meta_bytes(meta))
        metas.append(meta)
    return Outcome(
        e.source, e.split, "clipped", info=e.info, clips=metas, rejected_clips=e.rejected_clips
    )


@contextlib.contextmanager
def failing_as(stage: str) -> Iterator[None]:
    """Turn any error of one source's file in the block into a SourceError of `stage`: a PyAV
    decode error or one that ffmpeg reports (`DamagedSource`) is `decode_error`, an ffmpeg
    failure `ffmpeg`, a clip over a shard member's bound `too_large`, an inexact clip `inexact`,
    anything else `error`. Errors writing the output (`OUTPUT_ERRNOS`) stay the build's."""
    try:
        yield
    except (SourceError, processes.Stopped):
        raise
    except (av.FFmpegError, DamagedSource) as e:
        raise SourceError(stage, "decode_error", str(e)) from e
    except FFmpegError as e:
        raise_if_output_full(str(e))
        raise SourceError(stage, "ffmpeg", str(e)) from e
    except ClipTooLarge as e:
        raise SourceError(stage, "too_large", str(e)) from e
    except ClipError as e:
        raise SourceError(stage, "inexact", str(e)) from e
    except OSError as e:
        if e.errno in OUTPUT_ERRNOS:
            raise
        raise SourceError(stage, "error", f"{type(e).__name__}: {e}") from e
    except Exception as e:  # whatever else one source's file makes a library raise
        raise SourceError(stage, "error", f"{type(e).__name__}: {e}") from e


# --- what a source's clips record ---------------------------------------------------------------


def probe_info(facts: Probe) -> dict[str, Any]:
    """The probe's facts that the sources manifest records."""
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


def sample_meta(
    source: Source, split: str, key: str, clip: ClipResult, span_start: float, opts: ClipOptions
) -> SampleMeta:
    """The metadata (the `json` member) of the sample `key` of a clip cut from `source`."""
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


def meta_bytes(meta: SampleMeta) -> bytes:
    """A sample's `json` member."""
    return (json.dumps(meta, sort_keys=True, ensure_ascii=False) + "\n").encode()
