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
  +shots     the same build with --shots (TransNetV2 on every frame)     } compared with `build`
  +both      the same build with --speech --shots                        } in the same rounds
  prepass    alternative: a decode of each span to TransNetV2's 48x27 frames alone (what laying
             clips out within shots would cost before the clip stage's own decode)
  per-clip   alternative: one ffmpeg per clip (a decode per clip)
  segment    alternative: one encode + the segment muxer (reports its audio drift)

and prints source minutes processed per wall minute and the ratio of each to the floor. With
`--repeat N` every method runs N times, in interleaved rounds, and the medians are reported (a
shared or virtual machine's speed drifts by several percent from one run to the next).

    python bench/build_throughput.py                   # 6 sources x 30 s, 1920x1080 -> 1280x720
    python bench/build_throughput.py --repeat 3        # the same, medians of 3 rounds
    python bench/build_throughput.py --quick           # 4 sources x 20 s, 640x360 -> 320x180
    python bench/build_throughput.py --curation --skip-alternatives --repeat 3   # curation's cost
    python bench/build_throughput.py --curation --skip-alternatives --picture steady

The load average of the machine (other processes share it) is printed with the results: ratios
measured in the same rounds hold on a loaded machine, absolute times do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
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


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


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
        "--curation", action="store_true", help="also time the build with --speech / --shots"
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
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

        def run_build(curate: CurateOptions | None = None) -> None:
            with serve_folder(tmp / "src") as url:
                rows = [
                    Source(s.stem, f"{url}{s.name}", "raining", license="CC0", attribution="bench")
                    for s in sources
                ]
                config = BuildConfig(
                    out=Path(tempfile.mkdtemp(prefix="corpus-", dir=tmp)),  # fresh, not resumed
                    filter=FilterOptions(min_width=out_w, min_height=out_h),
                    clip=dataclasses.replace(opts, max_clips=count),
                    curate=curate or CurateOptions(),
                    workers=args.workers, quiet=True,
                )  # fmt: skip
                build(rows, config, source_list="bench")

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
        if args.curation:
            methods |= {
                "+speech": lambda: run_build(CurateOptions(speech=True)),
                "+shots": lambda: run_build(CurateOptions(shots=True)),
                "+both": lambda: run_build(CurateOptions(speech=True, shots=True)),
                "prepass": run_prepass,
            }
        if not args.skip_alternatives:
            (tmp / "per-clip").mkdir()
            (tmp / "segment").mkdir()
            methods |= {"per-clip": run_per_clip, "segment": run_segment}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeat):
            for name, method in methods.items():
                runs.setdefault(name, []).append(timed(method))
            load.append(os.getloadavg()[0])
        times = {name: statistics.median(walls) for name, walls in runs.items()}

    best = min(times["floor"], times["floor-par"])
    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    print(
        f"{len(sources)} {args.picture} sources x {span:g} s ({args.size}) -> {out_w}x{out_h} "
        f"{opts.fps} fps, "
        f"libx264 {opts.preset} crf {opts.crf}, {args.workers} workers; "
        f"{version.stdout.split(chr(10))[0][:40]}"
    )
    print(f"load average (1 min) at the start and after each round: {load}")
    print(
        f"{'method':<10} {'wall s':>8} {'src min/min':>12} {'x floor':>8} {'x build':>8}  "
        "rounds (wall s)"
    )
    for name, seconds in times.items():
        print(
            f"{name:<10} {seconds:8.2f} {minutes / (seconds / 60):12.2f} "
            f"{seconds / best:8.2f} {seconds / times['build']:8.3f}  "
            f"{', '.join(f'{t:.2f}' for t in runs[name])}"
        )
    per_round = {
        name: [t / b for t, b in zip(runs[name], runs["build"], strict=True)]
        for name in ("+speech", "+shots", "+both")
        if name in runs
    }
    for name, ratios in per_round.items():
        print(f"{name} / build per round: {', '.join(f'{r:.3f}' for r in ratios)}")
    if segments:
        cuts = [x for per_source in segments for x in per_source]
        print(f"segment muxer, per clip (want {opts.frames} frames, 0 ms audio error): ", end="")
        print(", ".join(f"{n} frames {ms:+.0f} ms" for n, ms in cuts))
    if args.json:
        results = {"times": times, "floor": best, "runs": runs, "minutes": minutes, "load": load}
        args.json.write_text(json.dumps(results | {"segments": segments}))


if __name__ == "__main__":
    main()
