"""Is the walk sound-guided? `model.train` itself on the toy world, measured on held-out clips.

    python bench/sound_guidance.py [--seeds 0,1,2] [--variants eq4,pooled,no-sound] [--jobs 1]
        [--threads 1] [--work DIR] [--demo CORPUS]

Training runs go `--jobs` at a time (each at `--threads`); a run already complete in `--work`
is reused, so a later call with more seeds or variants trains only what is new.

1. Writes the toy world (`model.toy_world`: 48 train and 16 held-out clips, the same world as
   tests/model/test_toy_world.py, the toy generator and its `train.yaml`) into WORK/world.
2. Trains, for each seed, with `python -m model.train --config WORK/world/train.yaml` (the paper
   preset, 300 steps, batch 1): the eq. 4 walker (the default), the pooled walker (`--walker
   pooled`) and the no-sound ablation (`--ablation no-sound`). Runs already complete are reused.
3. Measures every run on the 16 held-out clips (`model.sound_guidance`): one step's sound against
   its noise (frames moved), AV-Align of its videos against their own sound and a shuffled sound,
   eq. 2's sound term at steps 0 (untrained), 100, 200, 300, and the share of pixels outside [-1, 1]
   at every checkpoint.
4. Walks 60 s of held-out toy sound (15 windows of 4 s) with the first eq. 4 run, its bounds on and
   off, and with every step pushed the same way (the walker's step bias + 0.5): drift
   ||w(s) - w(0)|| at 1, 10 and 60 s, the largest distance of a latent from the start latent, and the
   share of pixels outside [-1, 1].

5. With `--demo CORPUS` (the demo corpus of the README's smoke run), also trains the tiny run on it
   (`--tiny`, 100 steps, a checkpoint every 25) with and without the range term (`--set
   weights.range=0`) and measures, at every checkpoint, the pixels outside [-1, 1] in the videos of
   4 test clips.

Prints the README's tables ("Is the walk sound-guided?", "Long sounds", "Frames in range") and writes
WORK/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

from model import runtime
from model.apps.checkpoint import load_run
from model.apps.video import render_frames, walk_drift, walk_sound
from model.sound_guidance import (
    by_part,
    held_out_waves,
    in_range,
    logged,
    measure,
    run_encoders,
    sound_term,
)
from model.toy_world import STEPS_TO_TRAIN, TRAIN_CONFIG, train_settings, write_world

VARIANTS = {
    "eq4 walker (paper, default)": [],
    "pooled walker (`--walker pooled`)": ["--walker", "pooled"],
    "eq4, no-sound ablation": ["--ablation", "no-sound"],
}
SHORT = dict(zip(("eq4", "pooled", "no-sound"), VARIANTS, strict=True))
"""`--variants` names of the VARIANTS."""
HELD_OUT = 16


def build_world(folder: Path) -> Path:
    write_world(folder, train=48, test=HELD_OUT)
    (folder / TRAIN_CONFIG).write_text(yaml.safe_dump(train_settings(folder), sort_keys=False))
    return folder


def train_command(world: Path, out: Path, seed: int, flags: list[str]) -> list[str] | None:
    """`python -m model.train` of a toy run (None when its last checkpoint exists: reused)."""
    if (out / "checkpoints" / f"step-{STEPS_TO_TRAIN:08d}").is_dir():
        return None
    cmd = [sys.executable, "-m", "model.train", "--config", str(world / TRAIN_CONFIG)]
    return cmd + ["--out", str(out), "--seed", str(seed), "--quiet", *flags]


def run_all(commands: list[list[str]], threads: int, jobs: int) -> None:
    """Run training commands, `jobs` at a time, each at `threads` threads; fail if any fails."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < jobs:
            cmd = pending.pop(0)
            print(f"training: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
            running.append((cmd, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)))
        cmd, proc = running.pop(0)
        if proc.wait() != 0:
            raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}")


def untrained(world: Path, out: Path, seed: int, flags: list[str]) -> Path:
    """The step-0 checkpoint of a toy run (what training starts from)."""
    from model.train import Trainer, build_config, load_frozen

    cfg = build_config(
        ["--config", str(world / TRAIN_CONFIG), "--out", str(out), "--seed", str(seed), *flags]
    )
    rt = runtime.setup("cpu", seed=seed)
    trainer = Trainer(cfg, rt, load_frozen(cfg, rt.device))
    return trainer.save(runtime.Checkpointer(out, keep=0), 0)


def checkpoints(run: Path) -> list[Path]:
    return runtime.Checkpointer(run).paths()


def sound_terms(run: Path, start: Path, waves: list[torch.Tensor]) -> list[float]:
    """Eq. 2's sound term on the held-out clips at step 0 and at every checkpoint."""
    out = []
    for ckpt in [start, *checkpoints(run)]:
        latents, G, config = load_run(ckpt, torch.device("cpu"))
        encoders = run_encoders(config, torch.device("cpu"))
        out.append(sound_term(latents, G, encoders, waves, config["n_mels"], seed=0))
    return out


def saturation(run: Path, waves: list[torch.Tensor]) -> list[float]:
    """Share of pixels outside [-1, 1] in the held-out videos of every checkpoint."""
    from model.sound_guidance import videos

    out = []
    for ckpt in checkpoints(run):
        latents, G, config = load_run(ckpt, torch.device("cpu"))
        out.append(in_range(videos(latents, G, waves, config["n_mels"], seed=0)))
    return out


@torch.no_grad()
def long_sound(run: Path, waves: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """60 s of held-out sound walked by the run: drift, largest distance from the start latent,
    saturated share; bounds on / off, steps as trained / pushed the same way."""
    from model.video_model import start_latents

    wave = torch.cat(waves)[: 60 * 44100]
    rows = {}
    for pushed in (False, True):
        for bounded in (True, False):
            latents, G, config = load_run(run, torch.device("cpu"))
            if not bounded:
                latents.encoder.cfg.radius = latents.walker.cfg.radius = 0.0
            if pushed:
                for blk in latents.walker.blocks:
                    blk.step.bias.add_(0.5)
            ws = walk_sound(latents, G, wave, config["n_mels"], seed=0)
            w = start_latents(G, 1, latents.cfg.truncation, torch.Generator().manual_seed(0))
            frames = torch.cat(list(render_frames(G, ws)))
            drift = walk_drift(ws, latents.cfg.fps)
            name = ("pushed the same way, " if pushed else "as trained, ") + (
                "bounded (default)" if bounded else "unbounded (as the authors' code)"
            )
            rows[name] = {
                **{f"{s:g} s": v for s, v in drift.items()},
                "max |w - w_start|": (ws - w[:, None]).norm(dim=-1).max().item(),
                "saturated": in_range([frames]),
            }
    rows["bound"] = {"walker + E_a radius": latents.walker.cfg.radius + latents.encoder.cfg.radius}
    return rows


DEMO_STEPS = 100
DEMO_VARIANTS = {
    "range term (default)": ("range", []),
    "no range term": ("norange", ["--set", "weights.range=0"]),
}


def demo_commands(corpus: Path, work: Path) -> list[list[str]]:
    """The tiny demo runs (`--tiny`, DEMO_STEPS steps, a checkpoint every 25), with and without the
    range term; those already complete are reused."""
    cmds = []
    for folder, flags in DEMO_VARIANTS.values():
        run = work / "demo" / folder
        if not (run / "checkpoints" / f"step-{DEMO_STEPS:08d}").is_dir():
            cmd = [sys.executable, "-m", "model.train", "--tiny", "--quiet", "--out", str(run)]
            cmd += ["--shards", str(corpus / "data" / "train-*.tar"), "--steps", str(DEMO_STEPS)]
            cmds.append(cmd + ["--save-every", "25", "--keep", "0", "--workers", "1", *flags])
    return cmds


def demo_range(corpus: Path, work: Path) -> dict[str, list[list[float]]]:
    """Per variant of the tiny demo run, per checkpoint: [step, share of pixels outside [-1, 1],
    smallest, largest pixel] of the videos of 4 test clips."""
    from model.sound_guidance import videos

    waves = held_out_waves(str(corpus / "data" / "test-*.tar"), 4)
    rows = {}
    for name, (folder, _) in DEMO_VARIANTS.items():
        rows[name] = []
        for ckpt in checkpoints(work / "demo" / folder):
            latents, G, config = load_run(ckpt, torch.device("cpu"))
            clips = videos(latents, G, waves, config["n_mels"], seed=0)
            pixels = torch.cat([c.flatten() for c in clips])
            step = int(ckpt.name.split("-")[1])
            rows[name].append([step, in_range(clips), pixels.min().item(), pixels.max().item()])
    return rows


def run_folder(work: Path, flags: list[str], seed: int) -> Path:
    return work / "runs" / f"{'-'.join(flags) or 'eq4'}-s{seed}".replace("--", "")


def measure_run(work: Path, flags: list[str], seed: int) -> dict:
    """Every measurement of one toy run and of its untrained start, on the held-out clips."""
    world, run = work / "world", run_folder(work, flags, seed)
    waves = held_out_waves(str(world / "data" / "test-*.tar"), HELD_OUT)
    print(f"measuring {run}", file=sys.stderr, flush=True)
    start = untrained(world, work / "untrained" / run.name, seed, flags)
    g, g0 = measure(run, waves), measure(start, waves)
    return {
        "ratio": g.ratio, "ratio_untrained": g0.ratio,
        "av_align": g.av_align, "av_align_shuffled": g.av_align_shuffled,
        "sound_term": sound_terms(run, start, waves),
        "sound_term_logged": by_part(logged(run, "loss/clip_audio"), 4),
        "saturated": saturation(run, waves),
        "saturated_logged": float(logged(run, "range/saturated").max()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(SHORT), help="of: " + ", ".join(SHORT))
    parser.add_argument("--threads", type=int, default=1, help="threads per training process")
    parser.add_argument("--jobs", type=int, default=1, help="training processes at a time")
    parser.add_argument("--work", type=Path, default=None, help="kept between runs (default: temp)")
    parser.add_argument("--demo", type=Path, default=None, help="demo corpus: also its tiny runs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {SHORT[v]: VARIANTS[SHORT[v]] for v in args.variants.split(",")}
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        world = work / "world"
        if not (world / TRAIN_CONFIG).is_file():
            build_world(world)
        waves = held_out_waves(str(world / "data" / "test-*.tar"), HELD_OUT)
        cmds = [
            train_command(world, run_folder(work, flags, seed), seed, flags)
            for flags in variants.values()
            for seed in seeds
        ]
        if args.demo:
            cmds += demo_commands(args.demo.resolve(), work)
        run_all([c for c in cmds if c], args.threads, args.jobs)
        results: dict = {"seeds": seeds, "threads": args.threads, "variants": list(variants)}
        results["runs"] = {}
        jobs = [(name, flags, seed) for name, flags in variants.items() for seed in seeds]
        with ProcessPoolExecutor(
            args.jobs, initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            flags, run_seeds = [j[1] for j in jobs], [j[2] for j in jobs]
            done = pool.map(measure_run, [work] * len(jobs), flags, run_seeds)
            for (name, _, seed), row in zip(jobs, done, strict=True):
                results["runs"][f"{name}|{seed}"] = row
        if SHORT["eq4"] in variants:
            results["long"] = long_sound(run_folder(work, [], seeds[0]), waves)
        if args.demo:
            results["demo"] = demo_range(args.demo.resolve(), work)
        (work / "results.json").write_text(json.dumps(results, indent=2))
        print_tables(results)


def print_tables(results: dict) -> None:
    seeds = results["seeds"]

    def stat(name: str, key, fmt: str = "{:.2f}") -> str:
        values = np.array([key(results["runs"][f"{name}|{s}"]) for s in seeds])
        if len(values) == 1:
            return fmt.format(values[0])
        return (
            f"{fmt.format(values.mean())} ({fmt.format(values.min())}-{fmt.format(values.max())})"
        )

    print(f"\nseeds {seeds}, {results['threads']} thread(s); mean (min-max over seeds)\n")
    print("| run | sound / noise (untrained) | AV-Align own | AV-Align shuffled | "
          "sound term at 0 / 100 / 200 / 300 steps | logged sound term by quarter | "
          "pixels outside [-1, 1]: checkpoints (training, most) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in results["variants"]:
        terms = " / ".join(
            stat(name, lambda r, i=i: r["sound_term"][i], "{:.3f}") for i in range(4)
        )
        logged_terms = " / ".join(
            stat(name, lambda r, i=i: r["sound_term_logged"][i], "{:.3f}") for i in range(4)
        )
        print(
            f"| {name} | {stat(name, lambda r: r['ratio'])} ({stat(name, lambda r: r['ratio_untrained'])}) "
            f"| {stat(name, lambda r: r['av_align'])} | {stat(name, lambda r: r['av_align_shuffled'])} "
            f"| {terms} | {logged_terms} | {stat(name, lambda r: max(r['saturated']), '{:.3g}')} "
            f"({stat(name, lambda r: r['saturated_logged'], '{:.3g}')}) |"
        )
    if "long" in results:
        print(
            "\n| 60 s walk | 1 s | 10 s | 60 s | max distance to w_start | pixels outside [-1, 1] |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, row in results["long"].items():
            if name == "bound":
                continue
            print(
                f"| {name} | {row['1 s']:.2f} | {row['10 s']:.2f} | {row['60 s']:.2f} "
                f"| {row['max |w - w_start|']:.2f} | {row['saturated']:.3g} |"
            )
        print(
            f"\nbound (walker + E_a radius): {results['long']['bound']['walker + E_a radius']:.2f}"
        )
    if "demo" in results:
        print(
            "\n| tiny demo run | "
            + " | ".join(f"step {r[0]}" for r in results["demo"]["range term (default)"])
            + " |"
        )
        print("| --- |" + " --- |" * len(results["demo"]["range term (default)"]))
        for name, rows in results["demo"].items():
            cells = " | ".join(f"{r[1]:.0%} ({r[2]:.2f} to {r[3]:.2f})" for r in rows)
            print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
