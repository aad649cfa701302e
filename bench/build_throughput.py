"""Build throughput against its floor, in one run on the same machine.

The floor is one bare ffmpeg transcode of each source's span to the output format (same scale +
crop, fps, libx264 settings, AAC): the least work any pipeline producing that format must do. The
script times, over the same generated sources:

  floor      bare ffmpeg transcode, one process per source
  clip       landscape_av.clip.cut_clips (one ffmpeg per source, split into per-clip encoders)
  build      the whole `build` (yt-dlp over 127.0.0.1, probe, filter, clip, shards, manifests, card)
  per-clip   alternative: one ffmpeg per clip (a decode per clip)
  segment    alternative: one encode + the segment muxer (reports its audio drift)

and prints source minutes processed per wall minute and the ratio of each to the floor.

    python bench/build_throughput.py                   # 3 sources x 30 s, 1920x1080 -> 1280x720
    python bench/build_throughput.py --quick           # 2 sources x 20 s, 640x360 -> 320x180
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import av

from landscape_av.build import BuildConfig, build
from landscape_av.clip import ClipOptions, clip_count, cut_clips
from landscape_av.ffmpeg import ffmpeg_exe, run_ffmpeg
from landscape_av.serve import serve_folder
from landscape_av.sources import Source


def make_sources(folder: Path, n: int, seconds: float, size: str) -> list[Path]:
    """Moving test pictures with pink-noise stereo sound, H.264/AAC like a typical download."""
    paths = []
    for i in range(n):
        path = folder / f"src{i}.mp4"
        run_ffmpeg(
            [
                "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30,noise=alls=8:allf=t:all_seed={i}",
                "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=48000:seed={i}",
                "-ac", "2", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "23", "-c:a", "aac", "-movflags", "+faststart", str(path),
            ]
        )  # fmt: skip
        paths.append(path)
    return paths


def video_filter(opts: ClipOptions) -> str:
    w, h = opts.width, opts.height
    return f"fps={opts.fps},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"


def encode_args(opts: ClipOptions) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", opts.preset, "-crf", str(opts.crf),
        "-threads", str(opts.x264_threads), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", opts.audio_bitrate, "-ar", str(opts.audio_rate),
        "-ac", str(opts.audio_channels),
    ]  # fmt: skip


def floor(src: Path, span: float, out: Path, opts: ClipOptions) -> None:
    run_ffmpeg(["-i", src, "-t", f"{span}", "-vf", video_filter(opts), *encode_args(opts), out])


def per_clip(src: Path, count: int, out: Path, opts: ClipOptions) -> None:
    for i in range(count):
        run_ffmpeg(
            ["-ss", f"{i * opts.seconds}", "-i", src, "-t", f"{opts.seconds}", "-vf",
             video_filter(opts), *encode_args(opts), out / f"{src.stem}_{i}.mp4"]
        )  # fmt: skip


def segment(src: Path, span: float, out: Path, opts: ClipOptions) -> list[tuple[int, float]]:
    """Encode once with a key frame at every clip start, cut with the segment muxer; returns,
    per segment, its video frames and its decoded audio length minus the clip length (ms)."""
    pattern = out / f"{src.stem}_%03d.mp4"
    cuts = [f"{i * opts.seconds:g}" for i in range(1, round(span / opts.seconds))]
    run_ffmpeg(
        ["-i", src, "-t", f"{span}", "-vf", video_filter(opts), *encode_args(opts),
         "-force_key_frames", ",".join(["0", *cuts]), "-f", "segment",
         "-segment_times", ",".join(cuts), "-reset_timestamps", "1", pattern]
    )  # fmt: skip
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
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each source")
    ap.add_argument("--size", default="1920x1080", help="source size")
    ap.add_argument("--preset", default=ClipOptions.preset)
    ap.add_argument("--workers", type=int, default=1, help="build workers")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--skip-alternatives", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.sources, args.seconds, args.size = 2, 20.0, "640x360"
    out_w, out_h = (320, 180) if args.quick else (1280, 720)
    opts = ClipOptions(width=out_w, height=out_h, preset=args.preset)

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        sources = make_sources(tmp / "src", args.sources, args.seconds, args.size)
        count = clip_count(args.seconds, opts)
        span = count * opts.seconds
        minutes = len(sources) * span / 60
        times: dict[str, float] = {}
        segments: list[tuple[int, float]] = []

        def run_floor() -> None:
            for s in sources:
                floor(s, span, tmp / f"floor-{s.stem}.mp4", opts)

        def run_clip() -> None:
            for s in sources:
                keys = [f"{s.stem}_{i:02d}" for i in range(count)]
                cut_clips(s, 0.0, count, keys, tmp / "clip" / s.stem, opts)

        def run_build() -> None:
            with serve_folder(tmp / "src") as url:
                rows = [
                    Source(s.stem, f"{url}{s.name}", "raining", license="CC0", attribution="bench")
                    for s in sources
                ]
                config = BuildConfig(
                    out=tmp / "corpus", width=out_w, height=out_h, min_width=out_w,
                    min_height=out_h, max_clips=count, preset=args.preset,
                    workers=args.workers, quiet=True,
                )  # fmt: skip
                build(rows, config, manifest="bench")

        times["floor"] = timed(run_floor)
        times["clip"] = timed(run_clip)
        times["build"] = timed(run_build)
        if not args.skip_alternatives:
            (tmp / "per-clip").mkdir()
            (tmp / "segment").mkdir()
            times["per-clip"] = timed(
                lambda: [per_clip(s, count, tmp / "per-clip", opts) for s in sources]
            )
            times["segment"] = timed(
                lambda: segments.extend(
                    x for s in sources for x in segment(s, span, tmp / "segment", opts)
                )
            )

    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    print(
        f"{len(sources)} sources x {span:g} s ({args.size}) -> {out_w}x{out_h} {opts.fps} fps, "
        f"libx264 {opts.preset} crf {opts.crf} threads {opts.x264_threads}; "
        f"{version.stdout.split(chr(10))[0][:40]}"
    )
    print(f"{'method':<10} {'wall s':>8} {'src min/min':>12} {'x floor':>8}")
    for name, seconds in times.items():
        print(
            f"{name:<10} {seconds:8.2f} {minutes / (seconds / 60):12.2f} {seconds / times['floor']:8.2f}"
        )
    if segments:
        print(f"segment muxer, per clip (want {opts.frames} frames, 0 ms audio error): ", end="")
        print(", ".join(f"{n} frames {ms:+.0f} ms" for n, ms in segments))
    if args.json:
        args.json.write_text(json.dumps({"times": times, "minutes": minutes, "segments": segments}))


if __name__ == "__main__":
    main()
