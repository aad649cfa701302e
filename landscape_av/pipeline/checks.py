"""The build's two gates, which keep a corpus in OUT unless the new one may replace it: before
any work, OUT must hold nothing or this same build's corpus (`check_target`, `check_folder`); after
the sources, their outcomes must make a corpus worth committing (`check_outcomes`). Each refusal is
a `BuildStopped` with its exit code and one line saying what to do."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from landscape_av.csv_text import from_cell
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.exits import (
    EXIT_FAILURES,
    EXIT_NO_CLIPS,
    EXIT_REFUSED,
    BuildStopped,
)
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.sample_store import SAMPLES_DIR
from landscape_av.schema import BUILD_FILE, CORPUS_ENTRIES, MANIFEST_DIR, WORK_DIR
from landscape_av.sources.source_list import Source, list_name


def check_outcomes(outcomes: list[Outcome], config: BuildConfig, out: Path) -> int | None:
    """Raise BuildStopped unless the sources' outcomes make a corpus worth committing: some clip,
    a failure share within `max_failure_rate` (of the sources not lost: a list that lost videos
    to time is not a broken build), and (without `overwrite`) no fewer clips than the corpus
    already in `out`. Returns the clip count of the corpus in `out` that `overwrite` lets a
    smaller one replace (for the build to say so), else None."""
    clips = sum(len(o.clips) for o in outcomes)
    count = Counter(o.status for o in outcomes)
    failed, lost = count["failed"], count["lost"]
    kept = f"{out} was left as it was"
    if clips == 0:
        raise BuildStopped(
            EXIT_NO_CLIPS,
            f"no clip was made from {len(outcomes)} sources ({failed} failed, "
            f"{count['rejected']} rejected, {lost} lost); {kept}",
        )
    available = len(outcomes) - lost
    share = failed / available
    if share > config.max_failure_rate:
        of = f"{available} sources not lost" if lost else f"{available} sources"
        raise BuildStopped(
            EXIT_FAILURES,
            f"{failed} of {of} failed ({share:.0%} > --max-failure-rate "
            f"{config.max_failure_rate:g}); {kept}; run the same command to retry them, or raise "
            "--max-failure-rate",
        )
    before = _corpus_rows(out, "clips")
    if before is None or clips >= len(before):
        return None
    if not config.overwrite:
        raise BuildStopped(
            EXIT_FAILURES,
            f"this run made {clips} clips, fewer than the {len(before)} of the corpus in {out}, "
            f"which was kept; run the same command to retry the {failed} failed sources, or "
            "pass --overwrite to replace it",
        )
    return len(before)


def check_target(
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
    there, here = list_name(record.get("manifest") or ""), list_name(source_list)
    if there != here:
        return f"source list {there!r}, not {here!r}"
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
    """Rows of a manifest of the corpus in `out` (its csv, the text as written), None where there
    is none."""
    try:
        with open(out / MANIFEST_DIR / f"{name}.csv", newline="", encoding="utf-8") as f:
            return [{k: from_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except OSError:
        return None
