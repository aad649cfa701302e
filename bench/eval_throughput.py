"""Throughput of `python -m model.evaluate`: videos/s of each stage and of each feature network.

    python bench/eval_throughput.py --shards 'demo/data/test-*.tar'          # tiny run, stand-ins
    python bench/eval_throughput.py --shards 'landscape-av/data/test-*.tar' \
        --checkpoint runs/video --weights weights/ --device cuda --videos 32

Times, on the same clips and with the harness's own code: reading a real clip (OpenCV, with and
without the AV-Align flow trajectory at its own size), the run's videos of a clip (walk + render,
both framings), and each per-video feature (I3D under both FVD protocols, Inception-v3, C3D, CLIP
+ sound encoder, AV-Align, distance to the source clip). Without `--checkpoint` a tiny untrained run
is made, without `--weights` the random stand-ins are used: then the network figures time the
harness around small nets (resizing included), not the real networks. The baseline of the run is
reading a real clip without flow; every figure is also given as a ratio to it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from model import runtime
from model.eval_media import iter_clips, sound_onsets
from model.evaluate import (
    METRICS,
    EvalConfig,
    _extractors,
    _load_run,
    compute_features,
    feature_names,
    generated,
)
from model.metrics.standins import write_standins
from model.train import Trainer, build_config, load_frozen


def tiny_run(folder: Path) -> Path:
    cfg = build_config(["--tiny", "--shards", "unused.tar", "--out", str(folder)])
    rt = runtime.setup("cpu", seed=0)
    Trainer(cfg, rt, load_frozen(cfg, rt.device)).save(runtime.Checkpointer(folder), 0)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shards", required=True, help="test shards (brace pattern or glob)")
    p.add_argument("--checkpoint", help="run folder (default: a tiny untrained run)")
    p.add_argument("--weights", help="feature networks folder (default: random stand-ins)")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    cfg = EvalConfig(
        checkpoint=args.checkpoint or str(tiny_run(tmp / "run")), shards=args.shards,
        weights=args.weights or str(write_standins(tmp / "weights")), out=str(tmp),
        fps=args.fps, resolution=args.resolution, device=args.device, metrics=METRICS, quiet=True,
    )  # fmt: skip
    rt = runtime.setup(args.device)
    run = _load_run(cfg, rt.device)
    ex, problems = _extractors(cfg, run, rt.device)
    for line in problems:
        print(line)
    clips = list(iter_clips(args.shards, args.videos))
    n = len(clips)
    print(
        f"{n} clips, {args.resolution} px, render at {args.fps:g} fps, {rt.device}, {args.threads} threads"
    )
    base = 0.0

    def report(what: str, seconds: float) -> None:
        ratio = f"{seconds / base:6.2f}x the baseline" if base else "baseline"
        print(
            f"{what:<34} {n / seconds:8.2f} videos/s ({seconds / n * 1000:7.0f} ms/video, {ratio})"
        )

    start = time.perf_counter()
    for clip in clips:
        clip.video(args.resolution, flow=False)
    base = time.perf_counter() - start
    report("read real clip (OpenCV)", base)
    start = time.perf_counter()
    real = [clip.video(args.resolution, flow=True) for clip in clips]
    report("read real clip + flow + onsets", time.perf_counter() - start)
    start = time.perf_counter()
    made = [generated(cfg, run, clip, "model", sound_onsets(clip.flac)) for clip in clips]
    report("the run's videos (walk + render)", time.perf_counter() - start)
    names = feature_names(cfg, ex, False, True)
    for name in names:
        start = time.perf_counter()
        for clip, videos, src in zip(clips, made, real, strict=True):
            compute_features([name], ex, cfg, videos["model@render"], False, clip, src)
        report(f"feature {name.split(':')[0]}", time.perf_counter() - start)


if __name__ == "__main__":
    main()
