"""Samples/s of `model.data.make_loader` against a naive decode-everything loader, same shards.

    python bench/loader_speed.py                       # builds a small 1280x720 demo corpus first
    python bench/loader_speed.py --shards 'landscape-av/data/train-*.tar' --samples 64

All loaders run the same WebDataset pipeline with the same workers, batch size and audio front
end and give the same batches (uint8 frames, mels, labels); they differ in how frames are obtained.
The naive one decodes every frame of the clip to full-size RGB and then picks T of them; the sparse
one (reading corpus shards) demuxes, decodes from each wanted frame's keyframe and converts only
the wanted frames; the prepared one reads shards that `model.prepare` decoded once (its one-off
cost is timed too). Ratios, not absolute numbers, are what carry over between machines.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from landscape_av.schema import shard_glob
from model import data as loader_module
from model.data import DataConfig, expand_shards, make_loader
from model.prepare import prepare


def naive_frames(mp4: bytes, times, size: int) -> np.ndarray:
    """Decode every frame to full-size RGB, then pick the ones at `times` and resize them."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        tb, t0 = float(stream.time_base), decoded[0][0]
    pts = np.array([p for p, _ in decoded])
    picks = [min(int(np.searchsorted(pts, t0 + t / tb - 1e-3)), len(pts) - 1) for t in times]
    rgb = torch.from_numpy(np.stack([decoded[i][1] for i in picks])).permute(0, 3, 1, 2).float()
    scale = size / min(rgb.shape[-2:])
    h, w = max(size, round(rgb.shape[-2] * scale)), max(size, round(rgb.shape[-1] * scale))
    rgb = torch.nn.functional.interpolate(rgb, size=(h, w), mode="area")
    top, left = (h - size) // 2, (w - size) // 2
    out = rgb[..., top : top + size, left : left + size].round().clamp(0, 255).byte()
    return out.permute(0, 2, 3, 1).numpy()


def samples_per_second(
    shards: list[str], cfg: DataConfig, args, naive: bool = False, samples: int | None = None
) -> float:
    """Time `samples` (default `args.samples`) after one warm-up batch (workers started)."""
    original = loader_module.frames_at_times
    if naive:  # the workers fork from this process, so they decode with the naive function
        loader_module.frames_at_times = naive_frames
    try:
        loader = make_loader(
            shards, cfg, args.batch_size, args.workers, shuffle=False, epochs=None, seed=0
        )
        batches = iter(loader)
        next(batches)
        start, n = time.perf_counter(), 0
        while n < (samples or args.samples):
            n += len(next(batches)["key"])
        return n / (time.perf_counter() - start)
    finally:
        loader_module.frames_at_times = original


def build_corpus(out: Path, size: str) -> list[str]:
    """The offline demo build at `size` (the published corpus's 1280x720 by default), in shards
    of 4 samples so that every worker has some."""
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build", "--demo"]
    cmd += ["--size", size, "--min-size", "320x180", "--max-clips", "2", "--quiet"]
    cmd += ["--shard-samples", "4"]
    subprocess.run([*cmd, "--out", str(out)], check=True)
    return expand_shards(str(out / shard_glob("train")))


def prepared(
    shards: list[str], out: Path, cfg: DataConfig, workers: int
) -> tuple[list[str], float]:
    """`model.prepare` copies of the shards, and its rate (samples/s)."""
    start = time.perf_counter()
    report = prepare(shards, out, cfg, workers, quiet=True)
    rate = report.samples / (time.perf_counter() - start)
    return expand_shards(str(out / "*.tar")), rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shards", nargs="+", help="shards to read (default: build a demo corpus)")
    p.add_argument("--size", default="1280x720", help="clip size of the demo build")
    p.add_argument("--samples", type=int, default=48, help="samples timed per decoding loader")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--resolution", type=int, default=256)
    args = p.parse_args()
    cfg = DataConfig(frames=args.frames, resolution=args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        shards = (
            expand_shards(args.shards) if args.shards else build_corpus(Path(tmp) / "c", args.size)
        )
        cached, prepare_rate = prepared(shards, Path(tmp) / "p", cfg, args.workers)
        rates = {
            "naive: decode every frame": samples_per_second(shards, cfg, args, naive=True),
            "sparse: decode the T frames (ours)": samples_per_second(shards, cfg, args),
            "prepared shards (ours)": samples_per_second(
                cached, cfg, args, samples=10 * args.samples
            ),
        }
        table = Table(
            title=f"loader samples/s ({args.workers} workers, T={args.frames}, "
            f"{args.resolution}px, {len(shards)} shards)"
        )
        for col in ("loader", "samples/s", "x naive"):
            table.add_column(col, justify="right")
        naive = rates["naive: decode every frame"]
        for name, rate in rates.items():
            table.add_row(name, f"{rate:.1f}", f"{rate / naive:.1f}x")
        table.add_row("(one-off) model.prepare", f"{prepare_rate:.1f}", "")
        Console().print(table)


if __name__ == "__main__":
    main()
