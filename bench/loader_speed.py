"""Samples/s of `model.data.make_loader` against a naive decode-everything loader, same shards.

    python bench/loader_speed.py                       # builds a small 1280x720 demo corpus first
    python bench/loader_speed.py --shards 'landscape-av/data/train-*.tar' --samples 64

Both loaders run the same WebDataset pipeline with the same workers, batch size and audio front
end; they differ only in how frames are obtained. The naive one decodes every frame of the clip to
full-size RGB and then picks T of them; ours demuxes, decodes from each wanted frame's keyframe
and converts only the wanted frames. With `--keyframes` the shards are first re-encoded with a
keyframe at every step start (what a build with `-force_key_frames` every D/T seconds would give),
the case where each sampled frame decodes alone. Ratios, not absolute numbers, are what carry over
between machines.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import webdataset as wds
from rich.console import Console
from rich.table import Table

from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.schema import shard_glob
from model import data as loader_module
from model.data import DataConfig, expand_shards, make_loader


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


def samples_per_second(shards: list[str], cfg: DataConfig, args, naive: bool) -> float:
    """Time `args.samples` samples after one warm-up batch (workers started, caches warm)."""
    original = loader_module.sample_frames
    if naive:  # the workers fork from this process, so they decode with the naive function
        loader_module.sample_frames = naive_frames
    try:
        loader = make_loader(
            shards, cfg, args.batch_size, args.workers, shuffle=False, epochs=None, seed=0
        )
        batches = iter(loader)
        next(batches)
        start, n = time.perf_counter(), 0
        while n < args.samples:
            n += len(next(batches)["key"])
        return n / (time.perf_counter() - start)
    finally:
        loader_module.sample_frames = original


def build_corpus(out: Path, size: str) -> list[str]:
    """The offline demo build at `size` (the published corpus's 1280x720 by default)."""
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build", "--demo"]
    cmd += ["--size", size, "--min-size", "320x180", "--max-clips", "2", "--quiet"]
    subprocess.run([*cmd, "--out", str(out)], check=True)
    return expand_shards(str(out / shard_glob("train")))


def with_step_keyframes(shards: list[str], out: Path, steps: int) -> list[str]:
    """Copies of the shards whose mp4s are re-encoded with a keyframe at every step start."""
    out.mkdir(parents=True, exist_ok=True)
    result = []
    for url in shards:
        dest = out / Path(url).name
        with wds.TarWriter(str(dest)) as sink:
            for sample in wds.WebDataset(url, shardshuffle=False, empty_check=False):
                meta = json.loads(sample["json"])
                src, enc = out / "in.mp4", out / "out.mp4"
                src.write_bytes(sample["mp4"])
                every = meta["duration"] / steps
                keys = ["-force_key_frames", f"expr:gte(t,n_forced*{every})"]
                x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "21", *keys]
                run_ffmpeg(["-i", str(src), *x264, "-c:a", "copy", str(enc)])
                sink.write(
                    {k: v for k, v in sample.items() if k != "__url__"} | {"mp4": enc.read_bytes()}
                )
        result.append(str(dest))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shards", nargs="+", help="shards to read (default: build a demo corpus)")
    p.add_argument("--size", default="1280x720", help="clip size of the demo build")
    p.add_argument("--samples", type=int, default=48, help="samples timed per loader")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--keyframes", action="store_true", help="also time step-keyframed copies")
    args = p.parse_args()
    cfg = DataConfig(frames=args.frames, resolution=args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        shards = (
            expand_shards(args.shards) if args.shards else build_corpus(Path(tmp) / "c", args.size)
        )
        variants = {"shards as built": shards}
        if args.keyframes:
            variants["keyframe every step"] = with_step_keyframes(
                shards, Path(tmp) / "k", args.frames
            )
        table = Table(
            title=f"loader samples/s ({args.workers} workers, T={args.frames}, {args.resolution}px)"
        )
        for col in ("shards", "naive decode-all", "sparse (ours)", "speed-up"):
            table.add_column(col, justify="right")
        for name, urls in variants.items():
            naive = samples_per_second(urls, cfg, args, naive=True)
            ours = samples_per_second(urls, cfg, args, naive=False)
            table.add_row(name, f"{naive:.1f}", f"{ours:.1f}", f"{ours / naive:.2f}x")
        Console().print(table)


if __name__ == "__main__":
    main()
