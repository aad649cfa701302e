"""`landscape-av build --engine ray` against `--engine local` on the same sources, in one run.

Starts a one-node Ray cluster on 127.0.0.1 with `--workers` CPUs (`ray start --head`, loopback
only), then builds the same generated sources (served over 127.0.0.1) into fresh folders with
each engine, in interleaved rounds, and prints wall seconds, source minutes per wall minute (also
per core) and the ratio ray / local. Each Ray build connects as a new driver, so its worker start
and imports are timed, as on a cluster. The cluster's processes are ended afterwards.

    python bench/ray_engine.py                      # 4 sources x 30 s, 1280x720 -> 1280x720
    python bench/ray_engine.py --repeat 3           # medians of 3 rounds
    python bench/ray_engine.py --quick              # 4 sources x 20 s, 640x360 -> 320x180
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from build_throughput import make_sources  # bench/ is the script's folder: on sys.path

from landscape_av.pipeline.build import build
from landscape_av.pipeline.clip import ClipOptions, clip_count
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.filters import FilterOptions
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import Source

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's node address: 127.0.0.1
MARKER = "LANDSCAPE_AV_BENCH_RAY"


@contextlib.contextmanager
def ray_cluster(cpus: int, temp: Path) -> Iterator[str]:
    """Address of a one-node Ray cluster on 127.0.0.1; its processes (found by a marker in their
    environment) are ended afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = ["ray", "start", "--head", "--port", str(port), "--num-cpus", str(cpus)]
    cmd += ["--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)]
    env = os.environ | LOOPBACK_ENV | {MARKER: str(temp)}
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        needle = f"{MARKER}={temp}".encode()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in Path("/proc").iterdir():
                with contextlib.suppress(OSError):
                    if proc.name.isdigit() and needle in (proc / "environ").read_bytes().split(
                        b"\0"
                    ):
                        os.kill(int(proc.name), sig)
            time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each source")
    ap.add_argument("--size", default="1280x720", help="source size")
    ap.add_argument("--workers", type=int, default=BuildConfig().workers, help="[CPU cores]")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.size = 20.0, "640x360"
    out_w, out_h = (320, 180) if args.quick else (1280, 720)
    opts = ClipOptions(width=out_w, height=out_h)
    os.environ.update(LOOPBACK_ENV)

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        sources = make_sources(tmp / "src", args.sources, args.seconds, args.size)
        count = clip_count(args.seconds, opts)
        minutes = len(sources) * count * opts.seconds / 60
        runs: dict[str, list[float]] = {}
        nbytes = 0
        with serve_folder(tmp / "src") as url, ray_cluster(args.workers, tmp / "ray") as address:
            rows = [
                Source(s.stem, f"{url}{s.name}", "raining", license="CC0", attribution="bench")
                for s in sources
            ]
            base = BuildConfig(
                filter=FilterOptions(min_width=out_w, min_height=out_h),
                clip=dataclasses.replace(opts, max_clips=count),
                workers=args.workers, ray_address=address, quiet=True,
            )  # fmt: skip
            for _ in range(args.repeat):
                for engine in ("local", "ray"):
                    out = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=tmp)) / "corpus"
                    config = dataclasses.replace(base, out=out, engine=engine)
                    start = time.perf_counter()
                    nbytes = build(rows, config, source_list="bench").summary()["bytes"]
                    runs.setdefault(engine, []).append(time.perf_counter() - start)
    times = {engine: statistics.median(walls) for engine, walls in runs.items()}
    print(
        f"{len(sources)} sources x {count * opts.seconds:g} s ({args.size}) -> {out_w}x{out_h} "
        f"{opts.fps} fps, {args.workers} CPUs (local: --workers; ray: one node)"
    )
    print(f"{'engine':<7} {'wall s':>8} {'src min/min':>12} {'per core':>9}  rounds (wall s)")
    for engine, seconds in times.items():
        rate = minutes / (seconds / 60)
        print(
            f"{engine:<7} {seconds:8.2f} {rate:12.2f} {rate / args.workers:9.2f}  "
            f"{', '.join(f'{t:.2f}' for t in runs[engine])}"
        )
    print(f"ray / local: {times['ray'] / times['local']:.3f}")
    print(f"corpus: {nbytes / minutes / 1e6:.1f} MB per source minute (shards)")


if __name__ == "__main__":
    main()
