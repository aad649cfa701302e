"""The build: source list -> per-source stages -> shards -> manifests -> card, and what keeps a
corpus whole through it. This module is the orchestration only; each part has its own module:

- `checks`: the gates: OUT holds nothing or this build's corpus; the outcomes make a corpus worth
  committing (some clip, few enough failures, no fewer clips than the corpus in OUT);
- `source_stages`: one source's download, probe, filter, clip and (with --speech / --shots)
  `curate`, ending in an `Outcome`, run by an engine (`engines`: `local` threads or `ray` tasks,
  behind one interface), which commits each result into the work folder's `sample_store` as it
  comes: a build killed at any point and run again reuses every finished source and redoes only
  the others;
- `network`: the first sources failing alike on the network stop the build in seconds;
- `corpus_writer`: the shards (in a fixed order, so that they come out byte-identical whatever the
  engine or the number of workers), the manifests and build.json, written into a staging folder;
- `swap`: the staging folder trades places with OUT in one step once finished, so OUT always holds
  the old corpus or the new one;
- `exits`, `disk_space`: a build that ends without a corpus (`BuildStopped`: no clip, too many
  failures, offline, disk full, Ctrl-C, OUT holding another build's corpus) leaves OUT's corpus as
  it was, with its exit code and the failures so far in `OUT/.work/manifests/`;
- `build_log`: yt-dlp's and ffmpeg's messages go to `OUT/.work/build.log`;
- `crash`: crash points that kill a real build at a chosen stage, for the resume tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape_av import processes
from landscape_av.classes import class_vocabulary
from landscape_av.corpus.card import write_card
from landscape_av.corpus.manifests import write_manifest
from landscape_av.corpus.stats import load_matplotlib
from landscape_av.pipeline.build_log import LOG_FILE, build_log
from landscape_av.pipeline.checks import check_outcomes, check_target
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.corpus_writer import (
    failure_rows,
    write_build_json,
    write_manifests,
    write_shards,
)
from landscape_av.pipeline.crash import Crasher
from landscape_av.pipeline.disk_space import OUTPUT_ERRNOS, output_message, space_needed
from landscape_av.pipeline.engines.interface import Board, Job
from landscape_av.pipeline.engines.registry import open_engine
from landscape_av.pipeline.exits import EXIT_INTERRUPTED, EXIT_OUTPUT, BuildStopped
from landscape_av.pipeline.network import NETWORK_PROBE, check_network
from landscape_av.pipeline.outcome import STATUSES, Outcome
from landscape_av.pipeline.sample_store import SampleStore
from landscape_av.pipeline.source_stages import STAGES
from landscape_av.pipeline.swap import recover, staging_dir, swap_in
from landscape_av.progress import console, print_summary, stage_progress
from landscape_av.schema import MANIFEST_DIR, WORK_DIR
from landscape_av.sources.source_list import Source, label_sources
from landscape_av.sources.split import assign_splits


@dataclass
class BuildResult:
    """A committed corpus: its sources' outcomes and its shards; `replaced_clips`, the clips of
    a larger corpus in OUT that it replaced (`--overwrite`), else None."""

    out: Path
    outcomes: list[Outcome]
    shards: list[dict[str, Any]]
    replaced_clips: int | None = None

    def replaced(self) -> str:
        """The line saying that a smaller corpus replaced a larger one ("" when none did)."""
        if self.replaced_clips is None:
            return ""
        made = sum(len(o.clips) for o in self.outcomes)
        return (
            f"--overwrite: replaced the corpus there, of {self.replaced_clips} clips, with this "
            f"build's {made}"
        )

    def summary(self) -> dict[str, Any]:
        statuses = Counter(o.status for o in self.outcomes)
        failures = Counter(f"{r['stage']}/{r['reason']}" for r in failure_rows(self.outcomes))
        clips = [c for o in self.outcomes for c in o.clips]
        return {
            "out": str(self.out),
            "sources": len(self.outcomes),
            **{status: statuses[status] for status in STATUSES},
            "clips": len(clips),
            "hours": round(sum(c["duration"] for c in clips) / 3600, 4),
            "shards": len(self.shards),
            "bytes": sum(s["bytes"] for s in self.shards),
            "failures": dict(sorted(failures.items())),
            "replaced_clips": self.replaced_clips,
        }


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

    The corpus is staged in a sibling folder and swapped in whole once finished (`swap.swap_in`).
    Raises BuildStopped (its `code` one of `exits.EXIT_CODES`) when no corpus was committed: OUT
    holds another build's corpus, no clip was made, too many sources failed, the network is down,
    the output cannot be written, or the build was interrupted."""
    out = Path(config.out)
    classes = class_vocabulary(s.class_name for s in sources) if classes is None else classes
    sources = label_sources(sources, classes)
    recover(out)
    check_target(out, sources, config, source_list)
    models = config.curate.models()  # CurationUnavailable before any work where one is missing
    work = out / WORK_DIR
    store = SampleStore(work)
    outcomes: dict[str, Outcome] = {}
    processes.reset()
    drawing = _meanwhile(load_matplotlib)  # for the card, while the first download worker starts
    try:
        store.reset_stale(config.output_fingerprint())
        with build_log(work / LOG_FILE, config.verbose) as log_path:
            if not config.quiet:
                console.print(f"yt-dlp's and ffmpeg's messages go to {log_path}")
            splits = assign_splits(sources, config.test_fraction, config.split_salt)
            crasher = Crasher()
            with stage_progress(config.quiet) as progress:
                board = Board(progress, len(sources), store, crasher, on_commit)
                _run_sources(sources, splits, config, board, outcomes, log_path)
                ordered = [outcomes[s.source_id] for s in sources]
                replaced = check_outcomes(ordered, config, out)
                staging = staging_dir(out)
                staging.mkdir(exist_ok=True)
                shard_rows, key_shard = write_shards(
                    ordered, config, store, out, staging, progress, crasher
                )
            optional = config.curate.columns()
            write_manifests(staging, store, ordered, shard_rows, key_shard, optional)
            write_build_json(staging, config, source_list, len(sources), classes, models)
            drawing.join()
            write_card(staging)
            swap_in(staging, out, crasher)
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
        if e.errno not in OUTPUT_ERRNOS:  # not the output's (a missing template, say): code 1
            raise _stopped(1, f"{e.filename or out}: {e.strerror or e}", outcomes, work) from None
        made = sum(len(o.clips) for o in outcomes.values())
        left = len(sources) - len(outcomes)
        in_flight = 0 if config.engine == "ray" else min(left, config.workers + config.downloads)
        needed = space_needed(store.size(), made, left, config.clip, in_flight)
        raise _stopped(EXIT_OUTPUT, output_message(e, out, needed), outcomes, work) from None
    result = BuildResult(out, ordered, shard_rows, replaced)
    summary = result.summary()
    print_summary(
        f"landscape-av build -> {out}",
        {k: v for k, v in summary.items() if k not in ("out", "failures", "replaced_clips")}
        | {f"  {k}": v for k, v in summary["failures"].items()},
        config.quiet,
    )
    return result


def _run_sources(
    sources: Sequence[Source],
    splits: dict[str, str],
    config: BuildConfig,
    board: Board,
    outcomes: dict[str, Outcome],
    log_path: Path,
) -> None:
    """Reuse each source's committed result (but a lost one with `retry_lost`), run the others'
    stages with the configured engine,
    putting each outcome into `outcomes` (by source id) as it comes, and stop early when the
    network is down (`network.check_network`)."""
    jobs: list[Job] = []
    for source in sources:
        split = splits[source.source_id]
        reused = board.store.reused(source, split)
        if reused is not None and not (reused.status == "lost" and config.retry_lost):
            board.advance(*STAGES)
            outcomes[source.source_id] = reused
        else:
            jobs.append((source, split))
    tried: list[Outcome] = []
    probe_count = min(NETWORK_PROBE, len(sources))
    engine = open_engine(config)
    with contextlib.closing(engine.run(jobs, board)) as results:
        for outcome in results:
            outcomes[outcome.source.source_id] = outcome
            tried.append(outcome)
            if len(tried) == probe_count:
                check_network(tried, sources, outcomes, log_path)


def _meanwhile(step: Callable[[], object]) -> threading.Thread:
    """`step` started in a thread of its own, to be joined before what needs it; what it raises is
    left to that caller to meet again (a failed import fails again, where it is needed)."""

    def run() -> None:
        with contextlib.suppress(Exception):
            step()

    thread = threading.Thread(target=run, name=getattr(step, "__name__", "meanwhile"), daemon=True)
    thread.start()
    return thread


def _stopped(code: int, message: str, outcomes: dict[str, Outcome], work: Path) -> BuildStopped:
    """BuildStopped(code, message), once the failures among `outcomes` are written to the work
    folder's failures manifest (named in the message; a full disk may prevent it)."""
    try:
        write_manifest(work, "failures", failure_rows(outcomes.values()))
        message += f"; failures so far: {work / MANIFEST_DIR / 'failures.csv'}"
    except OSError:
        pass
    return BuildStopped(code, message)
