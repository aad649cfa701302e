"""Where one source's time goes: the build's per-source work, step by step, in CPU seconds.

Runs the real per-source code (`source_stages.process`, with its download, the `EXAMINE` stages
and the commit) on generated sources served over 127.0.0.1, one source at a time in one thread, and
charges each step the CPU it costs: this thread's own plus that of every child process it runs
(reaped children from getrusage, live ones, such as long-lived download workers, from /proc).
CPU seconds hardly depend on what else runs on the machine, unlike wall time; wall seconds are
printed beside them. The first source is shown apart (it starts whatever is started once).

Then the download is split into its parts, each timed alone (median over the sources): the Python
interpreter's start, the imports of the download module and of yt-dlp, yt-dlp's first extraction
in a process (it compiles the URL pattern of every extractor up to the one that matches; a plain
http URL is the generic extractor's, the last) and a later one, yt-dlp's version check of ffmpeg,
and ffmpeg's section download itself (`-ss -t -i URL -c copy`, as yt-dlp runs it).

    python bench/source_cost.py                          # 8 sources x 10 s, 1920x1080 -> 1280x720
    python bench/source_cost.py --size 160x90 --seconds 12 --out-size 160x90 --sources 16   # tiny
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from build_throughput import make_sources

from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline import source_stages
from landscape_av.pipeline.clip import ClipOptions
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.filters import FilterOptions
from landscape_av.pipeline.outcome import Outcome
from landscape_av.pipeline.sample_store import SampleStore
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import Source

_TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's children: the reaped ones (getrusage) and the live ones with
    their own reaped children (/proc/<pid>/stat utime, stime, cutime, cstime)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields[1] is the ppid (field 4 of stat)
            total += sum(int(f) for f in fields[11:15]) / _TICK
    return total


class Meter:
    """CPU (this thread + children) and wall seconds per step, per source."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.wall: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        cpu, wall = time.thread_time() + children_cpu(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu[name].append(time.thread_time() + children_cpu() - cpu)
            self.wall[name].append(time.perf_counter() - wall)


class _Hooks:
    """`source_stages.StageHooks` for one source at a time, timing the download and the commit."""

    def __init__(self, meter: Meter, store: SampleStore) -> None:
        self.meter, self.store = meter, store
        self.downloading = meter.step("download")
        self.clipping = contextlib.nullcontext()

    def give_up(self, reason: str, url: str) -> bool:
        return False

    def downloaded(self, path: Path) -> None:
        pass

    def advance(self, *stages: str, nbytes: int = 0) -> None:
        pass

    def commit(self, outcome: Outcome, staging: Path | None) -> Outcome:
        with self.meter.step("commit"):
            self.store.commit(outcome, staging)
        return outcome


def _timed_stage(meter: Meter, stage: source_stages.Stage) -> source_stages.Stage:
    def timed(e: source_stages.Examined, hooks: source_stages.StageHooks) -> Outcome | None:
        with meter.step(stage.__name__.removesuffix("_stage")):
            return stage(e, hooks)

    return timed


def profile_sources(rows: list[Source], config: BuildConfig, work: Path) -> list[Meter]:
    """Run `process` on each source in turn; a Meter per source (step -> CPU, wall)."""
    meters = []
    stages = source_stages.EXAMINE
    store = SampleStore(work)
    store.reset_stale(config.output_fingerprint())
    for row in rows:
        meter = Meter()
        source_stages.EXAMINE = tuple(_timed_stage(meter, s) for s in stages)
        hooks = _Hooks(meter, store)
        try:
            with meter.step("total"):
                outcome = source_stages.process(row, "train", config, work, hooks)
        finally:
            source_stages.EXAMINE = stages
        if outcome.status != "clipped":
            raise SystemExit(f"{row.source_id}: {outcome.status} ({outcome.reason}): not profiled")
        meters.append(meter)
    return meters


_CHILD = """
import json, sys, time
marks = {"start": time.process_time()}
import landscape_av.pipeline.download
marks["import landscape_av"] = time.process_time()
import yt_dlp
marks["import yt_dlp"] = time.process_time()
params = {"quiet": True, "noprogress": True, "cachedir": False, "simulate": True}
for name in ("first", "second"):
    with yt_dlp.YoutubeDL(params) as ydl:
        ydl.extract_info(sys.argv[1], download=False)
    marks[name] = time.process_time()
print(json.dumps(marks))
"""


def download_parts(urls: list[str], seconds: float, tmp: Path) -> dict[str, float]:
    """Median CPU seconds of each part of one yt-dlp download, each timed alone (module doc)."""
    parts: dict[str, list[float]] = defaultdict(list)

    def child_cpu(cmd: list[str]) -> tuple[float, str]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, out

    for i, url in enumerate(urls):
        total, out = child_cpu([sys.executable, "-c", _CHILD, url])
        marks = json.loads(out)
        names = list(marks)
        parts["interpreter start"].append(marks["start"])
        for before, name in zip(names, names[1:], strict=False):
            label = {
                "first": "yt-dlp: first extraction (compiles extractor patterns)",
                "second": "yt-dlp: a later extraction, same process",
            }.get(name, name)
            parts[label].append(marks[name] - marks[before])
        parts["interpreter exit"].append(total - marks[names[-1]])
        parts["ffmpeg -bsfs (yt-dlp's version check)"].append(child_cpu([ffmpeg_exe(), "-bsfs"])[0])
        out_file = tmp / f"section-{i}.mp4"
        section = [ffmpeg_exe(), "-y", "-loglevel", "warning", "-nostats", "-ss", "0"]
        section += ["-t", f"{seconds:g}", "-i", url, "-c", "copy", "-f", "mp4", str(out_file)]
        parts["ffmpeg section download (-c copy)"].append(child_cpu(section)[0])
    return {name: statistics.median(values) for name, values in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each source")
    ap.add_argument("--size", default="1920x1080", help="source size")
    ap.add_argument("--out-size", default="1280x720", help="clip size")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    out_w, out_h = map(int, args.out_size.split("x"))
    clip = ClipOptions(width=out_w, height=out_h)
    count = max(1, int(args.seconds // clip.seconds))

    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        paths = make_sources(tmp / "src", args.sources, args.seconds, args.size, "moving")
        with serve_folder(tmp / "src") as url:
            rows = [
                Source(p.stem, f"{url}{p.name}", "raining", license="CC0", attribution="bench")
                for p in paths
            ]
            config = BuildConfig(
                out=tmp / "out",
                filter=FilterOptions(min_width=out_w, min_height=out_h),
                clip=dataclasses.replace(clip, max_clips=count),
                workers=1,
                quiet=True,
            )
            meters = profile_sources(rows, config, tmp / "work")
            parts = download_parts([r.url for r in rows], count * clip.seconds, tmp)

    first, rest = meters[0], meters[1:] or meters[:1]
    steps = list(first.cpu)
    steps.remove("total")

    def median(meter_list: list[Meter], what: str, step: str) -> float:
        return statistics.median(getattr(m, what)[step][0] for m in meter_list)

    print(
        f"{len(meters)} sources x {args.seconds:g} s ({args.size}) -> {args.out_size}, "
        f"{count} clip(s) each; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'step':<44} {'CPU s':>7} {'wall s':>7} {'first: CPU s':>13} {'wall s':>7}")
    clip_cpu = median(rest, "cpu", "clip")
    rows_out: dict[str, Any] = {}
    for step in [*steps, "total"]:
        found = [m for m in rest if step in m.cpu]
        cpu = median(found, "cpu", step) if found else 0.0
        wall = median(found, "wall", step) if found else 0.0
        print(
            f"{step:<44} {cpu:7.3f} {wall:7.3f} "
            f"{first.cpu[step][0]:13.3f} {first.wall[step][0]:7.3f}"
        )
        rows_out[step] = {"cpu": cpu, "wall": wall, "first_cpu": first.cpu[step][0]}
    total = median(rest, "cpu", "total")
    print(
        f"{'all but the clip stage':<44} {total - clip_cpu:7.3f}    "
        f"({(total - clip_cpu) / clip_cpu:.1%} of the clip stage's CPU)"
    )
    print("\nthe download's parts, each timed alone (CPU s, median):")
    for name, cpu in parts.items():
        print(f"  {name:<54} {cpu:7.3f}")
    if args.json:
        args.json.write_text(json.dumps({"steps": rows_out, "download_parts": parts}, indent=1))


if __name__ == "__main__":
    main()
