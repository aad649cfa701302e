"""Where one source's time goes: the build's per-source work, step by step, in CPU seconds.

Runs the real per-source code (`source_stages.process`, with its download, the `EXAMINE` stages
and the commit) on generated sources served over 127.0.0.1, one source at a time in one thread, and
charges each step the CPU it costs: this thread's own plus that of every child process it runs
(reaped children from getrusage, live ones, such as long-lived download workers, from /proc).
CPU seconds hardly depend on what else runs on the machine, unlike wall time; wall seconds are
printed beside them. The first source is shown apart (it starts whatever is started once).

Then the download is split into its parts, each timed alone (median over the sources): the Python
interpreter's start, the imports of the download module and of yt-dlp, making a `YoutubeDL` (a
worker makes one for all its jobs), its first extraction (it compiles the URL pattern of every
extractor up to the one that matches; a plain http URL is the generic extractor's, the last) and
a later one, one more `YoutubeDL` (what each job paid when each made its own), yt-dlp's version
check of ffmpeg, and ffmpeg's section download itself (`-ss -t -i URL -c copy`, as yt-dlp runs
it).

Last, what a build pays once, whatever its number of sources: the whole build of the same sources
in a fresh Python process (as `landscape-av build` runs it, and bench/build_throughput.py times it),
its CPU split into the download workers it started (each charged a worker's start: the parts above
that a later download does not pay), the shards, the manifests, build.json and the dataset card
(its statistics, its figures, its text, and matplotlib's import, which the build makes in a thread
while its first worker starts), beside its sources' per-source cost.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from build_throughput import build_from_spec, cpu_seconds, make_sources

from landscape_av.corpus import card
from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline import build as build_module
from landscape_av.pipeline import download, source_stages
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
ydl = yt_dlp.YoutubeDL(params)
marks["made"] = time.process_time()
for name in ("first", "second"):
    ydl.extract_info(sys.argv[1], download=False)
    marks[name] = time.process_time()
yt_dlp.YoutubeDL(params).close()
marks["another"] = time.process_time()
ydl.close()
print(json.dumps(marks))
"""


_MADE = "yt-dlp: a YoutubeDL made (extractors, TLS)"
_FIRST = "yt-dlp: first extraction (compiles extractor patterns)"
_LATER = "yt-dlp: a later extraction, same YoutubeDL"
_LABELS = {
    "made": _MADE,
    "first": _FIRST,
    "second": _LATER,
    "another": "yt-dlp: one more YoutubeDL (each job's, to 23040a8)",
}


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
            label = _LABELS.get(name, name)
            parts[label].append(marks[name] - marks[before])
        parts["interpreter exit"].append(total - marks[names[-1]])
        parts["ffmpeg -bsfs (yt-dlp's version check)"].append(child_cpu([ffmpeg_exe(), "-bsfs"])[0])
        out_file = tmp / f"section-{i}.mp4"
        section = [ffmpeg_exe(), "-y", "-loglevel", "warning", "-nostats", "-ss", "0"]
        section += ["-t", f"{seconds:g}", "-i", url, "-c", "copy", "-f", "mp4", str(out_file)]
        parts["ffmpeg section download (-c copy)"].append(child_cpu(section)[0])
    return {name: statistics.median(values) for name, values in parts.items()}


ONCE = {
    "shards": (build_module, "write_shards"),
    "manifests": (build_module, "write_manifests"),
    "build.json": (build_module, "write_build_json"),
    "card": (build_module, "write_card"),
    "card: statistics": (card, "corpus_stats"),
    "card: figures (drawing, PNG)": (card, "write_figures"),
    "card: text (its front matter, tables, checksums)": (card, "render_card"),
}
"""The build's steps paid once per build: name -> (module, name of the function it calls)."""
IMPORT = "card: matplotlib's import (a thread, at the start)"
"""`build.load_matplotlib`, run in a thread while the first download worker starts: charged that
thread's own CPU time."""


def once_per_build(spec: dict[str, Any]) -> dict[str, Any]:
    """In this fresh process: the whole build of `spec` (`build_throughput.build_from_spec`), its
    CPU, the CPU of each of its `ONCE` steps (they run after the sources', alone: this process's
    CPU and its children's is theirs) and the number of download workers it started."""
    charged: dict[str, float] = defaultdict(float)

    def charging(
        step: str, fn: Callable[..., Any], clock: Callable[[], float] = cpu_seconds
    ) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            cpu = clock()
            try:
                return fn(*args)
            finally:
                charged[step] += clock() - cpu

        return timed

    for step, (module, name) in ONCE.items():
        setattr(module, name, charging(step, getattr(module, name)))
    load = getattr(build_module, "load_matplotlib", None)  # None: code before 2343b95 (a baseline)
    if load is not None:  # it runs in a thread beside others: charged that thread's own CPU
        build_module.load_matplotlib = charging(IMPORT, load, time.thread_time)
    started = []

    class CountedWorker(download._Worker):
        def __init__(self, stderr: Path) -> None:
            started.append(stderr)
            super().__init__(stderr)

    download._Worker = CountedWorker
    wall, cpu = build_from_spec(spec)
    return {"wall": wall, "cpu": cpu, "steps": charged, "workers": len(started)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each source")
    ap.add_argument("--size", default="1920x1080", help="source size")
    ap.add_argument("--out-size", default="1280x720", help="clip size")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--build-spec", help=argparse.SUPPRESS)  # a child's build (once_per_build)
    args = ap.parse_args()
    if args.build_spec:
        print(json.dumps(once_per_build(json.loads(args.build_spec))))
        return
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
            spec = {
                "rows": [(r.source_id, r.url) for r in rows],
                "out": str(tmp / "built"),
                "clip": {"width": out_w, "height": out_h, "max_clips": count},
                "min_size": (out_w, out_h),
                "workers": BuildConfig().workers,
            }
            cmd = [sys.executable, __file__, "--build-spec", json.dumps(spec)]
            whole = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            )

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
    start_cost = sum(
        cpu for name, cpu in parts.items() if name.startswith(("interpreter", "import"))
    )
    start_cost += parts[_MADE] + parts[_FIRST] - parts[_LATER]
    steps = whole["steps"]
    once = {f"download workers: {whole['workers']} started, each {start_cost:.3f}": (
        whole["workers"] * start_cost
    )}  # fmt: skip
    once |= {step: steps[step] for step in ONCE if step != "card"}
    once |= {IMPORT: steps.get(IMPORT, 0.0), "card (all)": steps["card"] + steps.get(IMPORT, 0.0)}
    once_total = sum(cpu for step, cpu in once.items() if not step.startswith("card: "))
    print(
        f"\nonce per build: the whole build of these {len(meters)} sources in a fresh process, "
        f"{spec['workers']} workers: {whole['cpu']:.3f} CPU s ({whole['wall']:.1f} s wall), of which"
    )
    for step, cpu in once.items():
        print(f"  {step:<54} {cpu:7.3f}")
    print(f"  {'paid once per build, in all':<54} {once_total:7.3f}")
    per_source = len(meters) * total
    print(f"  {f'{len(meters)} sources x {total:.3f} (per source, above)':<54} {per_source:7.3f}")
    print(f"  {'the rest (the first source, threads at once)':<54} "
          f"{whole['cpu'] - once_total - per_source:7.3f}")  # fmt: skip
    if args.json:
        results = {"steps": rows_out, "download_parts": parts, "build": whole, "once": once}
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
