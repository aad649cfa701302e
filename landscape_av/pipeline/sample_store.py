"""The committed-sample store, `OUT/.work/samples/`: what a build keeps between runs.

Each source's finished result (its clips and `source.json`, or just the record of a rejection or
probe failure) is one folder `samples/<source_id>/`, written in a staging folder beside it and
renamed into place (`SampleStore.commit`), so a build killed at any point and run again reuses
every finished source (`SampleStore.reused`) and redoes only the others. `config.json` records the
settings the samples were made with; other settings drop them all (`SampleStore.reset_stale`).

`Damaged` is the memory of a source whose download proved damaged (`OUT/.work/damaged/<id>.json`):
a rerun that downloads the very same bytes skips it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from landscape_av.files import atomic_write, file_sha256
from landscape_av.pipeline.download import RECORD_SUFFIX
from landscape_av.pipeline.outcome import Outcome
from landscape_av.schema import SampleMeta
from landscape_av.sources.source_list import Source

SAMPLES_DIR = "samples"
DAMAGED_DIR = "damaged"
SOURCE_RECORD = "source.json"
CONFIG_RECORD = "config.json"
SAMPLE_EXTS = ("flac", "jpg", "json", "mp4")
"""The files of one sample in the store: the clip stage's and its metadata (`<key>.<ext>`)."""
log = logging.getLogger(__name__)


class SampleStore:
    """The committed samples of the work folder `work` (`work/samples/<source_id>/`)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.folder = work / SAMPLES_DIR

    def path(self, source_id: str) -> Path:
        """The committed result folder of a source."""
        return self.folder / source_id

    def staging(self, source_id: str) -> Path:
        """Where a source's result is written before `commit` renames it into place."""
        return self.folder / f".tmp-{source_id}"

    def member(self, meta: SampleMeta, ext: str) -> Path:
        """The file `ext` (one of `SAMPLE_EXTS`) of a committed sample."""
        return self.path(meta["source_id"]) / f"{meta['key']}.{ext}"

    def damaged(self, source_id: str) -> Path:
        """The damaged-download record of a source (see `Damaged`)."""
        return self.work / DAMAGED_DIR / f"{source_id}.json"

    def commit(self, outcome: Outcome, staging: Path | None) -> Path:
        """Make a source's result final: its record is written into the `staging` folder holding
        its files (a new empty one for None), which is then renamed to the source's committed
        folder in one step; returns that folder."""
        committed = self.path(outcome.source.source_id)
        if staging is None:
            staging = self.staging(outcome.source.source_id)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        record = {
            "row": source_row(outcome.source, outcome.split),
            "status": outcome.status,
            "stage": outcome.stage,
            "reason": outcome.reason,
            "detail": outcome.detail,
            "info": outcome.info,
            "clips": outcome.clips,
        }
        if outcome.rejected_clips:  # only builds with curation have them
            record["rejected_clips"] = outcome.rejected_clips
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(committed, ignore_errors=True)
        os.replace(staging, committed)
        return committed

    def reused(self, source: Source, split: str) -> Outcome | None:
        """The committed result of `source`, if any for its current source-list row (one for an
        older row is removed: the source is redone)."""
        committed = self.path(source.source_id)
        record = committed / SOURCE_RECORD
        if not record.is_file():
            return None
        saved = json.loads(record.read_text())
        if saved["row"] == source_row(source, split):
            return load_outcome(source, split, saved)
        shutil.rmtree(committed)
        return None

    def reset_stale(self, fingerprint: dict[str, Any]) -> None:
        """Drop committed samples made with other output settings than `fingerprint`
        (`BuildConfig.output_fingerprint`): they would not match this build."""
        record = self.folder / CONFIG_RECORD
        if record.is_file() and json.loads(record.read_text()) != fingerprint:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(record, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")

    def size(self) -> int:
        """Bytes of every file in the store."""
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


def source_row(source: Source, split: str) -> dict[str, Any]:
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


def load_outcome(source: Source, split: str, record: dict[str, Any]) -> Outcome:
    """The outcome a committed `source.json` record holds."""
    return Outcome(
        source,
        split,
        record["status"],
        record["stage"],
        record["reason"],
        record["detail"],
        record["info"],
        record["clips"],
        record.get("rejected_clips", []),
    )


class Damaged:
    """The memory of a source whose download failed after it was fetched: the file's sha256 and
    the failure, so that a rerun that downloads the very same bytes skips it (and says so)."""

    def __init__(self, record: Path, download: Path) -> None:
        self.record, self.download = record, download

    def seen_before(self) -> tuple[str, str, str] | None:
        """(stage, reason, detail) of the earlier run's failure when the download is that run's
        damaged file: recorded as it was then, so that a resumed build's failures read exactly as
        an uninterrupted one's (the skip is the log's to tell)."""
        try:
            saved = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        if saved["sha256"] != file_sha256(self.download):
            self.record.unlink()  # a different download: try it
            return None
        self._drop_download()
        log.warning(
            "%s: the same damaged download as before (sha256 %s): skipped",
            self.download.name.partition(".")[0],
            saved["sha256"][:16],
        )
        return saved["stage"], saved["reason"], saved["detail"]

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
