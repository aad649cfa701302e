"""Build throughput against its floor, in one run on the same machine.

The floor is a bare ffmpeg transcode of each source's span to the output format, with the clip
stage's own filters and encoder settings (`landscape_av.pipeline.clip`: fps, scale + crop, libx264 with a
key frame every second, AAC, faststart mp4): the least work any pipeline producing that format must
do. It is timed two ways and the faster counts:

  floor      one transcode after another, each with ffmpeg's own threading (all cores)
  floor-par  `workers` one-thread transcodes at once (how the clip stage spends the cores)

Over the same generated sources the script then times:

  clip       landscape_av.pipeline.clip.cut_clips, `workers` sources at once (one ffmpeg per source,
             split into per-clip encoders)
  build      the whole `build` (yt-dlp over 127.0.0.1, probe, filter, clip, shards, manifests, card)
  +speech    the same build with --speech (Silero VAD on every clip)     } with --curation: each
  +shots     the same build with --shots (TransNetV2 where the picture   } compared with `build`
             changes: --shot-screen)                                    } in the same rounds
  +both      the same build with --speech --shots                        }
  prepass    alternative: a decode of each span to TransNetV2's 48x27 frames alone (what laying
             clips out within shots would cost before the clip stage's own decode)
  baseline   with `--baseline DIR`: the same build by the code in DIR (another checkout of the
             repository, e.g. `git worktree add /tmp/main main`), to compare two versions
  per-clip   alternative: one ffmpeg per clip (a decode per clip)
  segment    alternative: one encode + the segment muxer (reports its audio drift)

Each build runs in a fresh Python process, as `landscape-av build` does, and times its `build`
call there (not the interpreter's start and the imports of the build module; the card's imports
at the end of the build, which a fresh process pays, are timed).

and prints source minutes processed per wall minute and the ratio of each to the floor. With
`--repeat N` every method runs N times, in interleaved rounds, and the medians are reported (a
shared or virtual machine's speed drifts by several percent from one run to the next). Beside the
wall seconds it prints the CPU seconds each method spent (this process and its children, the
loopback server's thread included), with their ratio to the floor's: on a machine that other jobs
load, CPU seconds vary far less than wall seconds; the load average is printed too.

    python bench/build_throughput.py                   # 6 sources x 30 s, 1920x1080 -> 1280x720
    python bench/build_throughput.py --repeat 3        # the same, medians of 3 rounds
    python bench/build_throughput.py --quick           # 4 sources x 20 s, 640x360 -> 320x180
    python bench/build_throughput.py --sources 8 --seconds 10 --skip-alternatives --baseline /tmp/main
    python bench/build_throughput.py --methods floor-par,build --skip-alternatives --baseline /tmp/main
                                                       # only what two versions' builds are held to
    python bench/build_throughput.py --curation --skip-alternatives --size 1280x720 --sources 2
    python bench/build_throughput.py --curation --skip-alternatives --picture steady   # curation's cost
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import av
import ffmpeg

from landscape_av.ffmpeg import ffmpeg_exe, run_ffmpeg
from landscape_av.pipeline.build import build
from landscape_av.pipeline.clip import (
    ClipOptions,
    clip_count,
    cut_clips,
    mp4_options,
    picture,
    sound,
)
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.curate import SHOT_FRAME_SIZE, CurateOptions
from landscape_av.pipeline.filters import FilterOptions
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import Source

T = TypeVar("T")


PICTURES = {
    "moving": "testsrc2=size={size}:rate=30,noise=alls=8:allf=t:all_seed={i}",
    "steady": "gradients=size={size}:rate=30:speed=0.01:seed={i},noise=alls=2:allf=t:all_seed={i}",
}
"""Source pictures: ffmpeg's moving test pattern, or slowly drifting colour gradients (a steady
shot to `--shots`' screen: its picture changes little over half a second); both with noise
(the steady one's faint: strong noise at 1280x720 makes clips of over 100 MB)."""


def make_sources(folder: Path, n: int, seconds: float, size: str, picture: str) -> list[Path]:
    """Test pictures with pink-noise stereo sound, H.264/AAC like a typical download."""
    paths = []
    for i in range(n):
        path = folder / f"src{i}.mp4"
        run_ffmpeg(
            [
                "-f", "lavfi", "-i", PICTURES[picture].format(size=size, i=i),
                "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=48000:seed={i}",
                "-ac", "2", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "23", "-c:a", "aac", "-movflags", "+faststart", str(path),
            ]
        )  # fmt: skip
        paths.append(path)
    return paths


def transcode(
    src: Path, out: Path, opts: ClipOptions, seek: dict[str, Any], more: dict[str, Any]
) -> None:
    """One transcode of `src` (input options `seek`) to `out` with the clip stage's picture, sound
    and mp4 settings, plus the output options `more` (which win over the stage's)."""
    source = ffmpeg.input(str(src), **seek)
    video, audio = picture(source.video, opts), sound(source.audio, opts)
    run_ffmpeg(ffmpeg.output(video, audio, str(out), **(mp4_options(opts) | more)).get_args())


def floor(src: Path, span: float, out: Path, opts: ClipOptions, threads: str) -> None:
    """One bare transcode; `threads` "0" lets ffmpeg pick."""
    transcode(src, out, opts, {}, {"t": f"{span}", "threads": threads})


def each(fn: Callable[[Path], T], sources: list[Path], workers: int) -> list[T]:
    """`fn` on every source, `workers` at once; its results in source order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, sources))


def per_clip(src: Path, count: int, out: Path, opts: ClipOptions) -> None:
    for i in range(count):
        seek = {"ss": f"{i * opts.seconds}"}
        transcode(src, out / f"{src.stem}_{i}.mp4", opts, seek, {"t": f"{opts.seconds}"})


def segment(src: Path, span: float, out: Path, opts: ClipOptions) -> list[tuple[int, float]]:
    """Encode once with a key frame at every clip start, cut with the segment muxer; returns,
    per segment, its video frames and its decoded audio length minus the clip length (ms)."""
    pattern = out / f"{src.stem}_%03d.mp4"
    cuts = [f"{i * opts.seconds:g}" for i in range(1, round(span / opts.seconds))]
    segments = {"force_key_frames": ",".join(["0", *cuts]), "format": "segment"}
    segments |= {"segment_times": ",".join(cuts), "reset_timestamps": 1, "t": f"{span}"}
    transcode(src, pattern, opts, {}, segments)
    found = []
    for path in sorted(out.glob(f"{src.stem}_*.mp4")):
        with av.open(str(path)) as c:
            frames = sum(1 for _ in c.decode(video=0))
        with av.open(str(path)) as c:
            samples = sum(f.samples for f in c.decode(audio=0))
        found.append((frames, 1000 * (samples / opts.audio_rate - opts.seconds)))
    return found


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], tuple[float, float] | None]) -> tuple[float, float]:
    """(wall s, CPU s) of `fn()` (each method's children have ended when it returns), or what
    `fn` returns: a method run in another process times itself there."""
    t, cpu = time.perf_counter(), cpu_seconds()
    measured = fn()
    return measured or (time.perf_counter() - t, cpu_seconds() - cpu)


def build_in_child(spec: dict[str, Any], code: Path | None) -> tuple[float, float]:
    """(wall s, CPU s) of `build` on the corpus `spec` (`build_from_spec`), in a fresh Python
    process, by the code in the checkout `code` (None: the code this process runs)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(code), env.get("PYTHONPATH"))))
    cmd = [sys.executable, __file__, "--build-spec", json.dumps(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the build in a child process failed:\n{done.stderr[-3000:]}")
    wall, cpu = json.loads(done.stdout.splitlines()[-1])
    return wall, cpu


def build_from_spec(spec: dict[str, Any]) -> tuple[float, float]:
    """(wall s, CPU s) of `build` on the sources and settings of `spec`: rows (source id, URL),
    out, clip (`ClipOptions` fields), curate (`CurateOptions` fields, optional), min_size, workers."""
    rows = [
        Source(sid, url, "raining", license="CC0", attribution="bench") for sid, url in spec["rows"]
    ]
    width, height = spec["min_size"]
    config = BuildConfig(
        out=Path(spec["out"]),
        filter=FilterOptions(min_width=width, min_height=height),
        clip=ClipOptions(**spec["clip"]),
        curate=CurateOptions(**spec.get("curate", {})),
        workers=spec["workers"],
        quiet=True,
    )

    def run() -> None:
        build(rows, config, source_list="bench")

    return timed(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each source")
    ap.add_argument("--size", default="1920x1080", help="source size")
    ap.add_argument("--picture", choices=sorted(PICTURES), default="moving", help="source picture")
    ap.add_argument("--preset", default=ClipOptions.preset)
    ap.add_argument("--workers", type=int, default=BuildConfig().workers, help="[CPU cores]")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--skip-alternatives", action="store_true")
    ap.add_argument(
        "--methods",
        default="floor,floor-par,clip,build",
        help="those of floor, floor-par, clip, build to time (one floor at least)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    ap.add_argument(
        "--curation", action="store_true", help="also time the build with --speech / --shots"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--baseline", type=Path, help="also time the build of the checkout here")
    ap.add_argument("--build-spec", help=argparse.SUPPRESS)  # a child's build (build_in_child)
    args = ap.parse_args()
    if args.build_spec:
        print(json.dumps(build_from_spec(json.loads(args.build_spec))))
        return
    if args.quick:
        args.sources, args.seconds, args.size = 4, 20.0, "640x360"
    out_w, out_h = (320, 180) if args.quick else (1280, 720)
    opts = ClipOptions(width=out_w, height=out_h, preset=args.preset)

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        sources = make_sources(tmp / "src", args.sources, args.seconds, args.size, args.picture)
        count = clip_count(args.seconds, opts)
        span = count * opts.seconds
        minutes = len(sources) * span / 60
        runs: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        segments: list[list[tuple[int, float]]] = []

        def run_floor() -> None:
            for s in sources:
                floor(s, span, tmp / f"floor-{s.stem}.mp4", opts, threads="0")

        def run_floor_par() -> None:
            each(
                lambda s: floor(s, span, tmp / f"floor-{s.stem}.mp4", opts, "1"),
                sources,
                args.workers,
            )

        def run_clip() -> None:
            def one(s: Path) -> None:
                keys = [f"{s.stem}_{i:02d}" for i in range(count)]
                cut_clips(s, 0.0, count, keys, tmp / "clip" / s.stem, opts)

            each(one, sources, args.workers)

        def run_build(
            code: Path | None = None, curate: dict[str, Any] | None = None
        ) -> tuple[float, float]:
            with serve_folder(tmp / "src") as url:
                spec = {
                    "rows": [(s.stem, f"{url}{s.name}") for s in sources],
                    "out": tempfile.mkdtemp(prefix="corpus-", dir=tmp),  # fresh, not resumed
                    "clip": {"width": out_w, "height": out_h, "preset": args.preset},
                    "min_size": (out_w, out_h),
                    "workers": args.workers,
                }
                spec["clip"]["max_clips"] = count
                if curate:
                    spec["curate"] = curate
                return build_in_child(spec, code)

        def run_prepass() -> None:
            def one(s: Path) -> None:
                source = ffmpeg.input(str(s), t=f"{span}")
                frames = picture(source.video, opts).filter("scale", *SHOT_FRAME_SIZE)
                out = ffmpeg.output(frames, "-", format="rawvideo", pix_fmt="rgb24", threads=1)
                subprocess.run(
                    [ffmpeg_exe(), "-v", "error", *out.get_args()], capture_output=True, check=True
                )

            each(one, sources, args.workers)

        def run_per_clip() -> None:
            each(lambda s: per_clip(s, count, tmp / "per-clip", opts), sources, args.workers)

        def run_segment() -> None:
            segments[:] = each(
                lambda s: segment(s, span, tmp / "segment", opts), sources, args.workers
            )

        methods = {
            "floor": run_floor, "floor-par": run_floor_par, "clip": run_clip, "build": run_build
        }  # fmt: skip
        chosen = args.methods.split(",")
        if set(chosen) - set(methods) or not {"floor", "floor-par"} & set(chosen):
            raise SystemExit(f"--methods: some of {', '.join(methods)}, one floor at least")
        methods = {name: method for name, method in methods.items() if name in chosen}
        if args.baseline is not None:
            methods["baseline"] = lambda: run_build(args.baseline.resolve())
        if args.curation:
            methods |= {
                "+speech": lambda: run_build(curate={"speech": True}),
                "+shots": lambda: run_build(curate={"shots": True}),
                "+both": lambda: run_build(curate={"speech": True, "shots": True}),
                "prepass": run_prepass,
            }
        if not args.skip_alternatives:
            (tmp / "per-clip").mkdir()
            (tmp / "segment").mkdir()
            methods |= {"per-clip": run_per_clip, "segment": run_segment}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeat):
            for name, method in methods.items():
                wall, cpu = timed(method)
                runs.setdefault(name, []).append(wall)
                cpus.setdefault(name, []).append(cpu)
        load.append(os.getloadavg()[0])
        times = {name: statistics.median(walls) for name, walls in runs.items()}
        cpu_times = {name: statistics.median(values) for name, values in cpus.items()}

    floors = [name for name in ("floor", "floor-par") if name in times]
    best = min(times[name] for name in floors)
    best_cpu = min(cpu_times[name] for name in floors)
    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    print(
        f"{len(sources)} sources x {span:g} s ({args.size}) -> {out_w}x{out_h} {opts.fps} fps, "
        f"libx264 {opts.preset} crf {opts.crf}, {args.workers} workers; "
        f"{version.stdout.split(chr(10))[0][:40]}; load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    print(
        f"{'method':<10} {'wall s':>8} {'src min/min':>12} {'x floor':>8} {'CPU s':>8} "
        f"{'x floor':>8}  rounds (wall s)"
    )
    for name, seconds in times.items():
        print(
            f"{name:<10} {seconds:8.2f} {minutes / (seconds / 60):12.2f} "
            f"{seconds / best:8.2f} {cpu_times[name]:8.2f} {cpu_times[name] / best_cpu:8.2f}  "
            f"{', '.join(f'{t:.2f}' for t in runs[name])}"
        )
    for name in ("+speech", "+shots", "+both"):
        if name in runs and "build" in runs:
            walls = [t / b for t, b in zip(runs[name], runs["build"], strict=True)]
            work = [c / b for c, b in zip(cpus[name], cpus["build"], strict=True)]
            print(
                f"{name} / build per round: wall {', '.join(f'{r:.3f}' for r in walls)}; "
                f"CPU {', '.join(f'{r:.3f}' for r in work)}"
            )
    if segments:
        cuts = [x for per_source in segments for x in per_source]
        print(f"segment muxer, per clip (want {opts.frames} frames, 0 ms audio error): ", end="")
        print(", ".join(f"{n} frames {ms:+.0f} ms" for n, ms in cuts))
    if args.json:
        results = {"times": times, "floor": best, "runs": runs, "minutes": minutes}
        results |= {"cpu": cpu_times, "cpu_runs": cpus, "load": load}
        args.json.write_text(json.dumps(results | {"segments": segments}))


if __name__ == "__main__":
    main()
