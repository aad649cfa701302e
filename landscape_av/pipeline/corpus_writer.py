"""The corpus's files, written into the staging folder from the committed samples: the shards
(`write_shards`: packed in a fixed order, so they come out byte-identical whatever ran the sources;
a shard whose samples did not change is reused), the four manifests (`write_manifests`) and
`build.json` (`write_build_json`). The card is `corpus.card`'s."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from landscape_av import __version__
from landscape_av.corpus.manifests import write_manifest
from landscape_av.files import atomic_write, file_sha256
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.crash import Crasher
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.sample_store import SAMPLE_EXTS, SampleStore
from landscape_av.pipeline.shard import SampleFiles, ShardPlan, plan_shards, write_shard
from landscape_av.schema import BUILD_FILE, DATA_DIR, SPLITS, manifest_columns
from landscape_av.sources.source_list import list_name

SHARD_RECORDS_DIR = "shards"
"""Folder of the work folder holding each written shard's record (its samples and bytes)."""


def write_shards(
    outcomes: list[Outcome],
    config: BuildConfig,
    store: SampleStore,
    out: Path,
    staging: Path,
    progress: Progress,
    crasher: Crasher,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Pack every clip into shards in `staging` (split order, then key order); reuse shards
    already written there or in the finished corpus in `out` with the same samples; remove shard
    files no longer planned. Returns the shards manifest rows and each sample key's shard name."""
    samples = sorted(
        (
            SampleFiles(
                meta["key"],
                meta["split"],
                {ext: store.member(meta, ext) for ext in SAMPLE_EXTS},
            )
            for o in outcomes
            for meta in o.clips
        ),
        key=lambda s: (SPLITS.index(s.split), s.key),
    )
    plans = plan_shards(samples, config.shard.max_bytes, config.shard.max_samples)
    data_dir = staging / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    records_dir = store.work / SHARD_RECORDS_DIR
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


def write_manifests(
    folder: Path,
    store: SampleStore,
    outcomes: list[Outcome],
    shard_rows: list[dict[str, Any]],
    key_shard: dict[str, str],
    optional: Collection[str] = (),
) -> None:
    """The four manifests of the corpus in `folder`, its clips' files in `store`, with the
    `schema.OPTIONAL_FIELDS` columns named in `optional` (`CurateOptions.columns`)."""
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
        sources.append({c: row.get(c) for c in manifest_columns("sources", optional)})
    for o in outcomes:
        for meta in o.clips:
            sizes = sum(store.member(meta, ext).stat().st_size for ext in SAMPLE_EXTS)
            clips.append(
                {c: meta.get(c) for c in manifest_columns("clips", optional) if c in meta}
                | {
                    "shard": key_shard[meta["key"]],
                    "bytes": sizes,
                    "sha256_mp4": meta["sha256"]["mp4"],
                    "sha256_flac": meta["sha256"]["flac"],
                    "sha256_jpg": meta["sha256"]["jpg"],
                    "sha256_json": file_sha256(store.member(meta, "json")),
                }
            )
    order = {row["shard"]: i for i, row in enumerate(shard_rows)}
    clips.sort(key=lambda c: (order[c["shard"]], c["key"]))
    write_manifest(folder, "sources", sources)
    write_manifest(folder, "clips", clips)
    write_manifest(folder, "shards", shard_rows)
    write_manifest(folder, "failures", failure_rows(outcomes))


def failure_rows(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """Failures manifest rows: one per source that gave no clip, except that curation's
    rejections are one per clip (its key leading the detail)."""
    rows = []
    for o in outcomes:
        base = {"source_id": o.source.source_id, "url": o.source.url, "class": o.source.class_name}
        for r in o.rejected_clips:
            detail = f"{r['key']}: {r['detail']}"
            rows.append(base | {"stage": "filter", "reason": r["reason"], "detail": detail})
        if o.status != "clipped" and not o.rejected_clips:
            rows.append(base | {"stage": o.stage, "reason": o.reason, "detail": o.detail})
    return rows


def write_build_json(
    out: Path,
    config: BuildConfig,
    source_list: str,
    n_sources: int,
    classes: Sequence[str],
    models: dict[str, Any] | None = None,
) -> None:
    """build.json: the settings, the tools' versions and, for a build with curation, its models
    (`CurateOptions.models`: package, file, sha256, licence)."""
    from importlib.metadata import version

    record = {
        "landscape_av": __version__,
        "manifest": list_name(source_list),  # build.json's name for it since the first corpora
        "sources": n_sources,
        "classes": list(classes),  # the class vocabulary: label i is classes[i]
        "config": config.to_json(),
        "tools": {
            "ffmpeg": _ffmpeg_version(),
            **{name: version(name) for name in ("av", "yt-dlp", "webdataset", "pyarrow")},
        },
    }
    if models:
        record["models"] = models
        record["tools"]["torch"] = version("torch")
    atomic_write(out / BUILD_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _ffmpeg_version() -> str:
    import subprocess

    from landscape_av.ffmpeg import ffmpeg_exe

    line = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True
    ).stdout.splitlines()
    return line[0] if line else "unknown"
