"""Throughput of `python -m model.evaluate`: videos/s of generation and of each feature network.

    python bench/eval_throughput.py --shards 'demo/data/test-*.tar'          # tiny run, stand-ins
    python bench/eval_throughput.py --shards 'landscape-av/data/test-*.tar' \
        --checkpoint runs/video --weights weights/ --device cuda --videos 32

Times, on the same clips and with the harness's own code: generation through `model.generate`
(model and silence rows), rendering the W+ interpolation baseline, decoding the real clips, and each
per-video feature (I3D, Inception-v3 on 16 frames, C3D, CLIP + sound encoder, AV-Align, MSE +
LPIPS). Without `--checkpoint` a tiny untrained run is made, without `--weights` the random
stand-ins are used: then the network figures time the harness around small nets (resizing to
224/299/112 included), not the real networks. Absolute numbers; they depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from model import runtime
from model.apps.checkpoint import checkpoint_folder, load_run
from model.evaluate import (
    EvalConfig,
    Run,
    _extractors,
    clip_seed,
    compute_features,
    feature_names,
    generate_video,
    interpolate,
    iter_clips,
    read_video,
)
from model.metrics.standins import write_standins
from model.train import Trainer, build_config, load_frozen


def tiny_run(folder: Path) -> Path:
    cfg = build_config(["--tiny", "--shards", "unused.tar", "--out", str(folder)])
    rt = runtime.setup("cpu", seed=0)
    Trainer(cfg, rt, load_frozen(cfg, rt.device)).save(runtime.Checkpointer(folder), 0)
    return folder


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.2f} videos/s  ({seconds / n * 1000:7.0f} ms/video)"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shards", required=True, help="test shards (brace pattern or glob)")
    p.add_argument("--checkpoint", help="run folder (default: a tiny untrained run)")
    p.add_argument("--weights", help="feature networks folder (default: random stand-ins)")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    checkpoint = args.checkpoint or str(tiny_run(tmp / "run"))
    weights = args.weights or str(write_standins(tmp / "weights"))
    cfg = EvalConfig(checkpoint=checkpoint, shards=args.shards, weights=weights, out=str(tmp),
                     fps=args.fps, device=args.device, quiet=True)  # fmt: skip
    rt = runtime.setup(args.device)
    folder = checkpoint_folder(checkpoint)
    config = runtime.read_config(folder)
    run = Run(folder, config, "bench", int(config["generator_kwargs"]["img_resolution"]))
    ex, problems = _extractors(cfg, run, rt.device)
    for line in problems:
        print(line)
    clips = list(iter_clips(args.shards, args.videos))
    n = len(clips)
    print(f"{n} clips, {run.resolution} px, {args.fps:g} fps, {rt.device}, {args.threads} threads")

    start = time.perf_counter()
    for clip in clips:
        generate_video(cfg, clip, "model", tmp / f"{clip.key}.mp4")
    print(f"generation (model.generate)    {rate(n, time.perf_counter() - start)}")
    _, G, _ = load_run(checkpoint, rt.device)
    psi = config["model"]["truncation"]
    start = time.perf_counter()
    for clip in clips:
        interpolate(G, psi, clip_seed(0, clip.key), clip.steps(args.fps))
    print(f"W+ interpolation render        {rate(n, time.perf_counter() - start)}")
    start = time.perf_counter()
    real = [clip.frames(args.fps, run.resolution) for clip in clips]
    print(f"real clip decode               {rate(n, time.perf_counter() - start)}")
    videos = [read_video(tmp / f"{clip.key}.mp4") for clip in clips]
    for name in feature_names(cfg, ex, "model"):
        start = time.perf_counter()
        for clip, video, frames in zip(clips, videos, real, strict=True):
            compute_features([name], ex, cfg, clip, video, frames)
        print(f"feature {name.split('-')[0]:<22} {rate(n, time.perf_counter() - start)}")


if __name__ == "__main__":
    main()
