"""The reference model's GPU path in one prepared run: train, kill and resume, generate, evaluate,
StyleGAN3 against NVIDIA's code; one JSON report of every figure and of what was run.

    python bench/gpu_check.py pack [--official PATH]                         # here: -> .gpucheck/
    python bench/gpu_check.py run --device cuda --data .gpucheck --out OUT   # on the GPU machine
    python bench/gpu_check.py run --device cpu --corpus CORPUS --out OUT     # tiny sizes (the test)

`run` makes random weights at the sizes of `PROFILES[device]` (the `cuda` profile: the paper's
StyleGAN3-T 256x256, checked against the layer table of NVIDIA's snapshots; the pSp-sized E_a, the
walker and both discriminators at `model.train`'s defaults; a ViT-B/32 CLIP; a ResNet-18 F_a), then
runs these steps, each in child processes with a time limit, the whole within `budget_s`:

    inputs    the weight files, the random stand-ins of the evaluation networks
              (`python -m model.metrics.standins`), prepared training shards (`model.prepare`
              output, packed or made from `--corpus`), the test clips, a synthetic sound
    train     `torchrun --nproc_per_node 1 -m model.train`: steps/s from TensorBoard's wall times
              after `warmup` steps, peak memory, every logged loss finite (where the batch does
              not fit the card: said, and `fallback_batch` run instead, for the steps after)
    resume    the same run, killed (SIGKILL to its whole process tree) once its first checkpoint
              is written, then run again: its final weights against the uninterrupted run's,
              tensor by tensor (where they differ, a second uninterrupted run measures how much
              two uninterrupted runs differ on this device)
    synthesis StyleGAN3 synthesis, ours against NVIDIA's official `networks_stylegan3` in the same
              process (`--official`: its CUDA ops where the machine's nvcc builds them, else its
              reference path) and against NVIDIA's test vectors (`--fixtures`): images/s, max error
    generate  `python -m model.generate` of `seconds` of sound: wall time, frames, the mp4 checked
    evaluate  `python -m model.evaluate` on the test clips with the stand-in feature networks
    networks  each evaluation network (the stand-ins, which resize to the real networks' input
              sizes), the run's CLIP and F_a on videos of the protocol's shape: videos/s

The model is driven only through its commands (`python -m model.train`, `.generate`,
`.evaluate`, `.prepare`, `.metrics.standins`) and their flags and `--set` settings, and through
the public loaders of its networks; `child` runs a command as `python -m` does and records its
wall time, peak memory and process-group backend. OUT/gpu_check.json is rewritten after every step,
so a run cut short keeps what it measured; the children's output goes to OUT/gpu_check.log.
Exit code 0 when every selected step ran and passed its checks, 1 otherwise, 130 on Ctrl-C.
bench/README.md says how to pack and carry the inputs to a machine without a package registry.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
if str(REPO) not in sys.path:  # the GPU machine runs the checkout without installing it
    sys.path.insert(0, str(REPO))

# ----------------------------------------------------------------------------------------------
# Sizes: every size, count and time limit of a run, per device

OFFICIAL_T256_LAYERS = (
    "L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512", "L6_84_512",
    "L7_148_512", "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181", "L12_276_128",
    "L13_256_128", "L14_256_3",
)  # fmt: skip
"""Synthesis layers (L<i>_<size>_<channels>) of NVIDIA's 256x256 StyleGAN3-T snapshots, 28.47 M
parameters in 114 state-dict entries (../shared/notes/reference-model-facts.md)."""

PROFILES: dict[str, dict[str, Any]] = {
    "cuda": {  # the paper's sizes
        # Generator(**kwargs) of NVIDIA's 256x256 StyleGAN3-T snapshots (and of lhq-256)
        "generator": {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 256,
                      "img_channels": 3, "channel_base": 32768, "channel_max": 512,
                      "mapping_kwargs": {"num_layers": 2}},
        "layers": OFFICIAL_T256_LAYERS,  # checked against the generator built from the kwargs
        "parameters_m": 28.47,
        "clip": {"arch": "ViT-B-32"},  # an open_clip architecture (151 M parameters)
        "sound_clip": {"blocks": [2, 2, 2, 2]},  # F_a: a ResNet-18 into CLIP's 512 dimensions
        "train_set": [],  # `--set`s of model.train: none, its defaults are the paper's sizes
        "data": {"frames": 10, "resolution": 256, "n_mels": 128},  # T, px, mel bands
        # warmup: steps left out of steps/s; fallback_batch: run where the batch does not fit
        "train": {"batch": 2, "steps": 50, "checkpoint": 25, "precision": "bf16", "workers": 4,
                  "warmup": 5, "fallback_batch": 1},
        "generate": {"seconds": 60, "fps": 30},  # fps None: the model's own rate
        "evaluate": {"videos": 4, "fps": 8, "frames": 16, "rows": "real,model,silence,interp",
                     "workers": 8},
        "networks": {"frames": 16, "repeats": 10},  # frames per video; timed calls per network
        "synthesis": {"batch": 8, "repeats": 10, "compile_s": 150},  # compile_s: NVIDIA's ops
        "timeouts": {"inputs": 120, "train": 300, "resume": 420, "synthesis": 300,
                     "generate": 150, "evaluate": 240, "networks": 120},
        "budget_s": 480,  # the whole run: the device tool's call ends at 600 s
    },
    "cpu": {  # tiny sizes: every step in a minute or two on 2 cores, for CI
        "generator": {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 16,
                      "img_channels": 3, "channel_base": 256, "channel_max": 32,
                      "mapping_kwargs": {"num_layers": 2}},
        "layers": None,
        "parameters_m": None,
        "clip": {"arch": "gpu-check-tiny",  # an open_clip config that each child registers
                 "config": {"embed_dim": 32,
                            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                           "head_width": 16, "patch_size": 8},
                            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32,
                                         "heads": 2, "layers": 1}}},
        "sound_clip": {"blocks": [1, 1, 1, 1]},
        "train_set": ["model.encoder.in_size=32", "model.encoder.width=8",
                      "model.encoder.depth=[1,1,1,1]", "model.walker.hidden=32",
                      "model.walker.audio_dim=32", "model.walker.noise_dim=32", "disc.ndf=8",
                      "disc.n_layers=2"],
        "data": {"frames": 3, "resolution": 16, "n_mels": 32},
        "train": {"batch": 2, "steps": 4, "checkpoint": 2, "precision": "bf16", "workers": 0,
                  "warmup": 1, "fallback_batch": None},
        "generate": {"seconds": 60, "fps": None},
        "evaluate": {"videos": 2, "fps": 2, "frames": 16, "rows": "model", "workers": 1},
        "networks": {"frames": 16, "repeats": 1},
        "synthesis": {"batch": 2, "repeats": 1, "compile_s": 0},
        "timeouts": dict.fromkeys(("inputs", "train", "resume", "synthesis", "generate",
                                   "evaluate", "networks"), 600),
        "budget_s": None,
    },
}  # fmt: skip

STEPS = ("inputs", "train", "resume", "synthesis", "generate", "evaluate", "networks")
"""In the order they run: what matters most first, as a run short of time skips the last."""
NEEDS = {"train": "inputs", "resume": "train", "generate": "train", "evaluate": "train",
         "networks": "inputs"}  # fmt: skip
MIN_STEP_S = 20  # a step with less time left is skipped

DEMO_BUILD = (
    "--demo", "--classes", "thunderstorm,raining,waterfall_burbling,wind_noise",
    "--size", "320x180", "--min-size", "320x180", "--max-clips", "1", "--demo-port", "0",
    "--workers", "2", "--quiet",
)  # fmt: skip
"""`landscape-av build` options of the packed corpus: 4 train and 4 test clips, 320x180."""

DEVICE_PACKAGES: dict[str, str | None] = {
    "av": None,
    "webdataset": None,
    "braceexpand": None,
    "open_clip_torch": None,
    "ftfy": None,
    "wcwidth": None,
    "imageio-ffmpeg": "0.5.1",  # ffmpeg 4.2.2 (a 27 MB wheel; 0.8's is 68 MB): generate's muxer
}
"""What the GPU machine's image lacks of what `model` imports (its package list in the device
notes, 2026-11-17), and the version to carry (None: the one installed here)."""
IMPORT_NAMES = {"av": "av", "webdataset": "webdataset", "braceexpand": "braceexpand",
                "open_clip_torch": "open_clip", "ftfy": "ftfy", "wcwidth": "wcwidth",
                "imageio-ffmpeg": "imageio_ffmpeg"}  # fmt: skip
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                   "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")  # fmt: skip
DEVICE_PYTHON = "3.12"
CARRY_LIMIT = 64 << 20  # the device tool's limit on what travels in one call
OFFICIAL_PARTS = ("dnnlib", "torch_utils", "training", "LICENSE.txt")
FIXTURES = ("t64.pt", "r64.pt")  # NVIDIA test vectors, in order of preference
REPORT = "gpu_check.json"
LOG = "gpu_check.log"


# ----------------------------------------------------------------------------------------------
# The report


class StepError(Exception):
    """A step that could not finish or whose result failed its check: one line for the report,
    and the figures measured until then."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None):
        super().__init__(message)
        self.figures = figures or {}


@dataclass
class Report:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, self.path)


@dataclass
class Context:
    """What the steps of one `run` share."""

    device: str
    profile: dict[str, Any]
    work: Path
    out: Path
    log: Path
    env: dict[str, str]
    started: float
    budget_s: float | None
    files: dict[str, str] = field(default_factory=dict)  # weights, shards, audio, official, ...
    runs: dict[str, Path] = field(default_factory=dict)  # run folders of model.train
    batch: int = 0  # model.train's batch: the profile's, or its fallback where that did not fit
    commands: list[str] = field(default_factory=list)  # every child command of the current step

    def remaining(self) -> float | None:
        if self.budget_s is None:
            return None
        return self.budget_s - (time.monotonic() - self.started)

    def limit(self, step: str) -> float:
        """Seconds a step may take: its own limit, within what the budget leaves."""
        own = float(self.profile["timeouts"][step])
        left = self.remaining()
        return own if left is None else min(own, left)


# ----------------------------------------------------------------------------------------------
# Child processes


def descendants(pid: int) -> list[int]:
    """The ids of every process below `pid` (from Linux's /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it (torchrun starts its workers in new sessions, so
    a process group does not reach them), each by its id."""
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)


@dataclass
class Ran:
    returncode: int
    seconds: float
    output: str
    stats: dict[str, Any]


def start(ctx: Context, name: str, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
    """Start a child (its own session, output to WORK/logs/NAME.log); recorded in the report."""
    log = ctx.work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    (ctx.work / "stats" / f"{name}.json").unlink(missing_ok=True)  # what the child will write
    ctx.commands.append(shlex.join(cmd))
    with log.open("w") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=ctx.env, start_new_session=True
        )
    return proc, log


def finish(ctx: Context, name: str, proc: subprocess.Popen, log: Path, t0: float) -> Ran:
    output = log.read_text(errors="replace")
    seconds = time.monotonic() - t0
    with ctx.log.open("a") as f:
        f.write(f"\n===== {name}: exit {proc.returncode} after {seconds:.1f} s\n")
        f.write(f"$ {ctx.commands[-1] if ctx.commands else ''}\n{output}")
    stats_file = ctx.work / "stats" / f"{name}.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    return Ran(proc.returncode, seconds, output, stats)


def run_child(ctx: Context, name: str, cmd: list[str], timeout: float) -> Ran:
    """Run a child to its end (its whole tree killed at `timeout` or on any exception)."""
    t0 = time.monotonic()
    proc, log = start(ctx, name, cmd)
    try:
        proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
        finish(ctx, name, proc, log, t0)
        raise StepError(f"{name}: still running after {timeout:.0f} s; killed") from None
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    ran = finish(ctx, name, proc, log, t0)
    if ran.returncode != 0:
        raise StepError(f"{name}: exit {ran.returncode}: {tail(ran.output)}")
    return ran


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def model_command(
    ctx: Context, name: str, module: str, args: list[str], torchrun: bool = False
) -> list[str]:
    """`python -m MODULE ARGS` through `child` (and under `torchrun --nproc_per_node 1`)."""
    head = [sys.executable]
    if torchrun:
        head += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    cmd = [*head, str(SCRIPT), "child", "--stats", str(ctx.work / "stats" / f"{name}.json")]
    if "clip_config" in ctx.files:
        cmd += ["--clip-config", ctx.files["clip_config"]]
    return [*cmd, "--module", module, "--", *args]


def child(args: argparse.Namespace) -> int:
    """`python -m MODULE ARGS`, then its wall time, peak memory and the process-group backend
    that it asked for into `--stats` (rank 0 only)."""
    import resource
    import runpy

    import torch
    import torch.distributed as dist

    backends: list[str | None] = []
    init = dist.init_process_group

    def recording_init(*a: Any, **k: Any) -> Any:
        backends.append(k.get("backend") or (a[0] if a else None))
        return init(*a, **k)

    dist.init_process_group = recording_init
    if args.clip_config:
        import open_clip

        open_clip.add_model_config(args.clip_config)
    argv = list(args.args[1:] if args.args[:1] == ["--"] else args.args)
    sys.argv = [args.module, *argv]
    stats: dict[str, Any] = {"module": args.module, "started_at": time.time()}
    t0 = time.perf_counter()
    code: int | str | None = 0
    try:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
    except BaseException as e:
        code = 1
        stats["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        stats["seconds"] = time.perf_counter() - t0
        stats["exit_code"] = code if isinstance(code, int) else (0 if code is None else 1)
        stats["world_size"] = int(os.environ.get("WORLD_SIZE", 1))
        stats["process_group_backends"] = backends
        stats["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        stats["peak_rss_children_bytes"] = (
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        )
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            stats["peak_cuda_allocated_bytes"] = torch.cuda.max_memory_allocated()
            stats["peak_cuda_reserved_bytes"] = torch.cuda.max_memory_reserved()
        if int(os.environ.get("RANK", 0)) == 0:
            path = Path(args.stats)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stats, indent=2))
    return stats["exit_code"]


def peak_memory(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes", "peak_rss_bytes")
    return {k: stats[k] for k in keys if k in stats}


# ----------------------------------------------------------------------------------------------
# Environment and carried packages


def ensure_packages(data: Path | None, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Import what `model` needs; where some of it is missing, unpack DATA/site.tar.xz (made by
    `pack`) into WORK/site and put it first on the path of this process and its children."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ImportError:
            return True

    missing = [n for n, mod in IMPORT_NAMES.items() if absent(mod)]
    carried = None
    if missing and data is not None and (data / "site.tar.xz").is_file():
        site = work / "site"
        with tarfile.open(data / "site.tar.xz") as tar:
            tar.extractall(site, filter="tar")
        sys.path.insert(0, str(site))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        importlib.invalidate_caches()
        carried = json.loads((data / "pack.json").read_text()).get("packages")
    still = [n for n, mod in IMPORT_NAMES.items() if absent(mod)]
    if still:
        where = f"{data}/site.tar.xz" if data else "--data (see `pack`)"
        raise StepError(f"missing Python packages {', '.join(still)}; not in {where}")
    return {"missing_here": missing, "carried": carried}


HIDE = """import importlib.abc, importlib.machinery, sys
class HidePackages(importlib.abc.MetaPathFinder):  # bench/gpu_check.py --hide-packages
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in {hidden!r}:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [{site!r}])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden: the GPU machine lacks it)")
        return spec
sys.meta_path.insert(0, HidePackages())
"""


def hide_packages(work: Path, env: dict[str, str]) -> None:
    """Make this process and its children import the packages that the GPU machine lacks only
    from WORK/site (where `ensure_packages` unpacks them): the carried path, tried on CPU."""
    code = HIDE.format(hidden=sorted(IMPORT_NAMES.values()), site=str(work / "site"))
    folder = work / "hide"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(code)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    exec(compile(code, str(folder / "sitecustomize.py"), "exec"), {})


def versions(names: list[str]) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def command_output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "git_commit": command_output(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "packages": versions(
            ["numpy", "torchvision", "safetensors", "tensorboard", *DEVICE_PACKAGES]
        ),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env |= {
            "card": torch.cuda.get_device_name(0),
            "card_memory_bytes": props.total_memory,
            "compute_capability": f"{props.major}.{props.minor}",
            "nvidia_smi": command_output(["nvidia-smi", "--format=csv,noheader",
                                          "--query-gpu=name,driver_version,memory.total"]),
        }  # fmt: skip
        nvcc = shutil.which("nvcc") or str(
            Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin/nvcc"
        )
        version = command_output([nvcc, "--version"])
        env["nvcc"] = version.splitlines()[-1] if version else None
    else:
        env["card"] = None
    return env


# ----------------------------------------------------------------------------------------------
# Inputs


def write_sound(path: Path, seconds: float, rate: int = 44100, seed: int = 0) -> None:
    """A mono 16-bit WAV: rain-like noise swelling slowly, with a low rumble every few seconds."""
    import wave

    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = rng.standard_normal(t.size) * (0.25 + 0.15 * np.sin(2 * np.pi * t / 17))
    for onset in np.arange(1.5, seconds, 3.7):
        after = np.clip(t - onset, 0, None)
        x += (t >= onset) * 1.5 * np.exp(-after / 0.8) * np.sin(2 * np.pi * 45 * after)
    pcm = (x / np.abs(x).max() * 0.8 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def make_weights(profile: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Random weights at the profile's sizes, saved as the model commands read them."""
    import open_clip
    import torch

    from model.sound_clip import SoundClip, SoundClipConfig, save_sound_clip
    from model.stylegan3 import Generator, save_generator

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    figures: dict[str, Any] = {}
    torch.manual_seed(0)
    G = Generator(**profile["generator"])
    layers = tuple(G.synthesis.layer_names)
    params = sum(p.numel() for p in G.parameters())
    figures["generator"] = {
        "layers": layers,
        "parameters": params,
        "state_entries": len(G.state_dict()),
    }
    if profile["layers"] is not None and layers != tuple(profile["layers"]):
        raise StepError(f"the generator's layers {layers} are not the official table's")
    if profile["parameters_m"] is not None and abs(params / 1e6 - profile["parameters_m"]) > 0.01:
        raise StepError(f"the generator has {params / 1e6:.2f} M parameters, not the official's")
    files["generator"] = str(save_generator(G, folder / "generator.safetensors"))

    clip = profile["clip"]
    if "config" in clip:
        config = folder / f"{clip['arch']}.json"
        config.write_text(json.dumps(clip["config"]))
        open_clip.add_model_config(str(config))
        files["clip_config"] = str(config)
    model = open_clip.create_model(clip["arch"], pretrained=None)
    torch.save(model.state_dict(), folder / "clip.pt")
    files["clip"], files["clip_arch"] = str(folder / "clip.pt"), clip["arch"]
    embed_dim = int(model.text_projection.shape[1])
    figures["clip"] = {
        "arch": clip["arch"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }

    cfg = SoundClipConfig(embed_dim=embed_dim, blocks=tuple(profile["sound_clip"]["blocks"]))
    sound_clip = SoundClip(cfg)
    files["sound_clip"] = str(save_sound_clip(sound_clip, folder / "sound_clip"))
    figures["sound_clip"] = {"parameters": sum(p.numel() for p in sound_clip.parameters())}
    return {"files": files, "figures": figures}


def unpack(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def step_inputs(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    p = ctx.profile
    made = make_weights(p, ctx.work / "weights")
    ctx.files |= made["files"]
    run_child(
        ctx,
        "standins",
        [sys.executable, "-m", "model.metrics.standins", "--out", str(ctx.work / "standins")],
        ctx.limit("inputs"),
    )
    ctx.files["standins"] = str(ctx.work / "standins")
    data = p["data"]
    if args.data is not None:
        packed = json.loads((args.data / "pack.json").read_text())
        if packed["data"] != data:
            raise StepError(f"{args.data} was packed for {packed['data']}, this run needs {data}")
        folder = unpack(args.data / "data.tar.xz", ctx.work / "data")
        prepared, test = folder / "prepared", folder / "test"
        source = {"packed": str(args.data), "corpus_build": packed.get("corpus_build")}
    elif args.corpus is not None:
        prepared, test = ctx.work / "prepared", args.corpus / "data"
        prepare = [
            sys.executable, "-m", "model.prepare", "--shards", str(args.corpus / "data" / "train-*.tar"),
            "--out", str(prepared), "--frames", str(data["frames"]),
            "--resolution", str(data["resolution"]), "--n-mels", str(data["n_mels"]), "--quiet",
        ]  # fmt: skip
        run_child(ctx, "prepare", prepare, ctx.limit("inputs"))
        source = {"corpus": str(args.corpus)}
    else:
        raise StepError(
            "no training data: pass --data (made by `pack`) or --corpus (a built corpus)"
        )
    ctx.files["train_shards"] = str(prepared / "train-*.tar")
    ctx.files["test_shards"] = str(test / "test-*.tar")
    for what in ("train_shards", "test_shards"):
        if not sorted(Path(ctx.files[what]).parent.glob(Path(ctx.files[what]).name)):
            raise StepError(f"no shard matches {ctx.files[what]}")
    sound = ctx.work / f"sound-{p['generate']['seconds']}s.wav"
    write_sound(sound, p["generate"]["seconds"])
    ctx.files["sound"] = str(sound)
    return {"data": source | {"settings": data}, **made["figures"], "files": dict(ctx.files)}


# ----------------------------------------------------------------------------------------------
# Training, and resuming a killed run


def train_args(ctx: Context, out: Path, save_every: int) -> list[str]:
    p, t, d = ctx.profile, ctx.profile["train"], ctx.profile["data"]
    args = [
        "--shards", ctx.files["train_shards"], "--out", str(out),
        "--generator", ctx.files["generator"], "--clip", ctx.files["clip"],
        "--clip-arch", ctx.files["clip_arch"], "--sound-clip", ctx.files["sound_clip"],
        "--device", ctx.device, "--precision", t["precision"], "--seed", "0",
        "--batch-size", str(ctx.batch), "--frames", str(d["frames"]), "--n-mels", str(d["n_mels"]),
        "--steps", str(t["steps"]), "--save-every", str(save_every), "--keep", "1",
        "--workers", str(t["workers"]), "--log-every", "1", "--image-every", str(t["steps"]),
        "--quiet",
    ]  # fmt: skip
    for setting in p["train_set"]:
        args += ["--set", setting]
    return args


def latest_checkpoint(run: Path) -> Path | None:
    """The newest complete `RUN/checkpoints/step-*` folder (model.train's layout)."""
    done = [p for p in sorted((run / "checkpoints").glob("step-*")) if checkpoint_complete(p)]
    return done[-1] if done else None


def checkpoint_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ("model.safetensors", "state.pt", "config.json"))


def scalars(run: Path) -> dict[str, list[tuple[int, float, float]]]:
    """TensorBoard scalars of a run: tag -> [(step, wall time, value)] in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0}).Reload()
    return {
        tag: sorted((e.step, e.wall_time, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["scalars"]
    }


def training_figures(run: Path, stats: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    """Steps/s after `warmup` steps, from TensorBoard's wall time of each step's losses: 1 / the
    median step (a checkpoint's save does not count) and the mean over those steps; the time to
    the first step's end; whether every logged loss is finite."""
    import statistics

    losses = {tag: rows for tag, rows in scalars(run).items() if tag.startswith("loss/")}
    rows = losses.get("loss/g_total", [])
    if [s for s, _, _ in rows] != list(range(1, steps + 1)):
        raise StepError(f"{run}/tb: loss/g_total is not logged at steps 1..{steps}")
    times = [wall for _, wall, _ in rows[max(warmup, 1) - 1 :]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    nonfinite = sorted(tag for tag, v in losses.items() if not all(math.isfinite(x) for *_, x in v))
    return {
        "steps": steps,
        "steps_timed": len(gaps),
        "steps_per_s": 1 / statistics.median(gaps) if gaps else None,
        "steps_per_s_mean": len(gaps) / (times[-1] - times[0]) if gaps else None,
        "startup_and_first_step_s": rows[0][1] - stats["started_at"],
        "command_s": stats["seconds"],
        "losses_finite": not nonfinite,
        "nonfinite_losses": nonfinite,
        "last_losses": {tag.removeprefix("loss/"): v[-1][2] for tag, v in sorted(losses.items())},
    }


def step_train(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    t = ctx.profile["train"]
    figures: dict[str, Any] = {}
    ctx.batch = t["batch"]
    while True:
        run = ctx.work / f"run-whole-b{ctx.batch}"
        cmd = model_command(ctx, "train", "model.train", train_args(ctx, run, t["steps"]), True)
        try:
            ran = run_child(ctx, "train", cmd, ctx.limit("train"))
            break
        except StepError as e:
            log = (ctx.work / "logs" / "train.log").read_text(errors="replace").lower()
            if ctx.batch == (t["fallback_batch"] or ctx.batch) or "out of memory" not in log:
                raise
            figures[f"out_of_memory_at_batch_{ctx.batch}"] = str(e)
            ctx.batch = t["fallback_batch"]  # measure what fits, and let the other steps run
    ctx.runs["whole"] = run
    figures |= training_figures(run, ran.stats, t["steps"], t["warmup"])
    figures |= {
        "batch": ctx.batch,
        "frames": ctx.profile["data"]["frames"],
        "precision": t["precision"] if ctx.device == "cuda" else "fp32 (CPU runs fp32)",
        "samples_per_s": figures["steps_per_s"] and figures["steps_per_s"] * ctx.batch,
        "world_size": ran.stats.get("world_size"),
        "process_group_backends": ran.stats.get("process_group_backends"),
        **peak_memory(ran.stats),
    }
    if not figures["losses_finite"]:
        raise StepError(f"non-finite losses: {figures['nonfinite_losses']}", figures)
    if ctx.batch != t["batch"]:
        raise StepError(f"batch {t['batch']} ran out of memory; batch {ctx.batch} ran", figures)
    return figures


def compare_weights(a: Path, b: Path) -> dict[str, Any]:
    """Two `model.safetensors` files tensor by tensor: bit-identical or not, the largest absolute
    difference, per module (the name's first part)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        keys_a, keys_b = set(fa.keys()), set(fb.keys())
        modules: dict[str, dict[str, Any]] = {}
        differing: list[str] = []
        for key in sorted(keys_a & keys_b):
            x, y = fa.get_tensor(key), fb.get_tensor(key)
            same = x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
            if same:
                diff = 0.0
            elif x.shape == y.shape and x.is_floating_point():
                diff = (x.double() - y.double()).abs().max().item()
            else:
                diff = math.inf
            m = modules.setdefault(
                key.split(".")[0], {"tensors": 0, "differing": 0, "max_abs_diff": 0.0}
            )
            m["tensors"] += 1
            if not same:
                m["differing"] += 1
                m["max_abs_diff"] = max(m["max_abs_diff"], diff) if math.isfinite(diff) else diff
                differing.append(key)
    only = sorted(keys_a ^ keys_b)
    return {
        "identical": not differing and not only,
        "tensors": len(keys_a & keys_b),
        "differing": len(differing),
        "first_differing": differing[:5],
        "only_in_one": only[:5],
        "max_abs_diff": max((m["max_abs_diff"] for m in modules.values()), default=0.0),
        "modules": modules,
    }


RESUMED = re.compile(r"resuming .+? at step (\d+)")


def step_resume(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    t = ctx.profile["train"]
    whole = latest_checkpoint(ctx.runs["whole"])
    if whole is None:
        raise StepError("the uninterrupted run left no checkpoint")
    run = ctx.work / "run-killed"
    cmd = model_command(
        ctx, "resume-1", "model.train", train_args(ctx, run, t["checkpoint"]), torchrun=True
    )
    first = run / "checkpoints" / f"step-{t['checkpoint']:08d}"
    t0 = time.monotonic()
    deadline = t0 + ctx.limit("resume")
    proc, log = start(ctx, "resume-1", cmd)
    try:
        while (
            proc.poll() is None and not checkpoint_complete(first) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        running = proc.poll() is None
        kill_tree(proc.pid)
        proc.wait()
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    ran = finish(ctx, "resume-1", proc, log, t0)
    kept = [p.name for p in sorted((run / "checkpoints").glob("*"))]
    if not checkpoint_complete(first):
        raise StepError(
            f"no checkpoint at step {t['checkpoint']} before the kill: {tail(ran.output)}"
        )
    last = f"step-{t['steps']:08d}"
    interrupted = running and last not in kept
    figures: dict[str, Any] = {
        "killed_after_s": ran.seconds,
        "interrupted": interrupted,
        "left_by_the_kill": kept,
    }
    if not interrupted:
        raise StepError(f"the run ended before the kill ({kept}); a resume was not tested", figures)
    cmd = model_command(
        ctx, "resume-2", "model.train", train_args(ctx, run, t["checkpoint"]), torchrun=True
    )
    again = run_child(ctx, "resume-2", cmd, deadline - time.monotonic())
    found = RESUMED.search(again.output)
    figures["resumed_at_step"] = int(found.group(1)) if found else None
    resumed = latest_checkpoint(run)
    if resumed is None or resumed.name != last:
        raise StepError(f"the resumed run ended at {resumed}, not {last}", figures)
    figures["against_uninterrupted"] = compare_weights(
        whole / "model.safetensors", resumed / "model.safetensors"
    )
    figures["identical"] = figures["against_uninterrupted"]["identical"]
    if not figures["identical"]:
        left = (ctx.remaining() or math.inf) - MIN_STEP_S
        if left > ctx.profile["timeouts"]["train"] / 2:  # how far apart two whole runs end up
            rerun = ctx.work / "run-whole-again"
            cmd = model_command(
                ctx, "train-again", "model.train", train_args(ctx, rerun, t["steps"]), torchrun=True
            )
            run_child(ctx, "train-again", cmd, min(left, ctx.limit("train")))
            again_ckpt = latest_checkpoint(rerun)
            figures["uninterrupted_twice"] = compare_weights(
                whole / "model.safetensors", again_ckpt / "model.safetensors"
            )
        twice = figures.get("uninterrupted_twice", {}).get("max_abs_diff", "not run")
        diff = figures["against_uninterrupted"]["max_abs_diff"]
        raise StepError(
            f"the resumed run's weights differ from the uninterrupted run's (max |diff| "
            f"{diff:.3g}; between two uninterrupted runs: {twice})",
            figures,
        )
    return figures


# ----------------------------------------------------------------------------------------------
# Generation and evaluation


def probe_video(path: Path) -> dict[str, Any]:
    """Frames, rate and duration of an mp4 from its container (no decoding), and its audio."""
    import av

    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        return {
            "frames": video.frames,
            "fps": float(video.average_rate) if video.average_rate else None,
            "video_seconds": float(video.duration * video.time_base) if video.duration else None,
            "size": [video.width, video.height],
            "audio_seconds": float(audio.duration * audio.time_base)
            if audio and audio.duration
            else None,
            "audio_codec": audio.codec_context.name if audio else None,
            "bytes": path.stat().st_size,
        }


def step_generate(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    g = ctx.profile["generate"]
    out = ctx.work / "generate.mp4"
    flags = ["--checkpoint", str(ctx.runs["whole"]), "--audio", ctx.files["sound"], "--out", str(out),
             "--device", ctx.device, "--seed", "0", "--quiet"]  # fmt: skip
    if g["fps"] is not None:
        flags += ["--fps", str(g["fps"])]
    cmd = model_command(ctx, "generate", "model.generate", flags)
    ran = run_child(ctx, "generate", cmd, ctx.limit("generate"))
    video = probe_video(out)
    rate = g["fps"] or ctx.profile["data"]["frames"] / 10  # the model's rate: T per 10 s clip
    expected = round(g["seconds"] * rate)
    seconds = ran.stats["seconds"]
    figures = {
        "sound_seconds": g["seconds"],
        "command_s": seconds,
        "sound_seconds_per_s": g["seconds"] / seconds,
        "frames_expected": expected,
        "frames_per_s": video["frames"] / seconds,
        "video": video,
        **peak_memory(ran.stats),
    }
    if video["frames"] != expected:
        raise StepError(f"{out}: {video['frames']} frames, expected {expected}")
    if video["audio_seconds"] is None or abs(video["audio_seconds"] - g["seconds"]) > 0.5:
        raise StepError(f"{out}: audio of {video['audio_seconds']} s, expected {g['seconds']}")
    keep_artifact(ctx, out, "generate.mp4")
    return figures


def keep_artifact(ctx: Context, path: Path, name: str, limit: int = 15 << 20) -> None:
    """Copy a file into OUT (where the device tool brings files back: at most 16 MiB each)."""
    if path.is_file() and path.stat().st_size <= limit:
        shutil.copyfile(path, ctx.out / name)


def step_evaluate(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    e = ctx.profile["evaluate"]
    out = ctx.work / "eval"
    flags = [
        "--checkpoint", str(ctx.runs["whole"]), "--shards", ctx.files["test_shards"],
        "--train-shards", ctx.files["test_shards"], "--weights", ctx.files["standins"],
        "--out", str(out), "--num-videos", str(e["videos"]), "--fps", str(e["fps"]),
        "--frames", str(e["frames"]), "--baselines", e["rows"], "--workers", str(e["workers"]),
        "--device", ctx.device, "--quiet",
    ]  # fmt: skip
    cmd = model_command(ctx, "evaluate", "model.evaluate", flags)
    ran = run_child(ctx, "evaluate", cmd, ctx.limit("evaluate"))
    metrics = json.loads((out / "metrics.json").read_text())
    rows = sorted(metrics["rows"])
    seconds = ran.stats["seconds"]
    keep_artifact(ctx, out / "metrics.md", "evaluate-metrics.md")
    return {
        "videos": metrics["clips"],
        "rows": rows,
        "metrics": sorted({k for r in metrics["rows"].values() for k in r if k != "title"}),
        "skipped": metrics.get("skipped", []),
        "command_s": seconds,
        "clips_per_s": metrics["clips"] / seconds,
        "videos_per_s": metrics["clips"] * len(rows) / seconds,
        "note": "stand-in networks (random, tiny, resizing to the real input sizes): a harness timing",
        **peak_memory(ran.stats),
    }


def step_networks(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    n, d = ctx.profile["networks"], ctx.profile["data"]
    stats = ctx.work / "stats" / "networks.json"
    cmd = [
        sys.executable, str(SCRIPT), "networks", "--device", ctx.device, "--stats", str(stats),
        "--weights", ctx.files["standins"], "--clip", ctx.files["clip"],
        "--clip-arch", ctx.files["clip_arch"], "--sound-clip", ctx.files["sound_clip"],
        "--resolution", str(d["resolution"]), "--frames", str(n["frames"]),
        "--n-mels", str(d["n_mels"]), "--repeats", str(n["repeats"]),
    ]  # fmt: skip
    if "clip_config" in ctx.files:
        cmd += ["--clip-config", ctx.files["clip_config"]]
    return run_child(ctx, "networks", cmd, ctx.limit("networks")).stats


def networks(args: argparse.Namespace) -> int:
    """Videos/s of each evaluation network, CLIP and F_a, called as the harness calls them."""
    import numpy as np
    import torch

    from model.clip import load_clip
    from model.metrics.networks import NETWORKS, load_networks
    from model.sound_clip import load_sound_clip

    if args.clip_config:
        import open_clip

        open_clip.add_model_config(args.clip_config)
    dev = torch.device(args.device)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (args.frames, args.resolution, args.resolution, 3), dtype=np.uint8)
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
    other = frames.flip(0)
    mel = torch.rand(1, 1, args.n_mels, 862, device=dev)  # a 10 s clip's log-mel (hop 512)
    nets, problems = load_networks(args.weights, list(NETWORKS), dev)
    clip = load_clip(args.clip, arch=args.clip_arch).to(dev)
    sound_clip = load_sound_clip(args.sound_clip).to(dev)
    f = args.frames
    calls: dict[str, tuple[Callable[[], Any], str]] = {
        "i3d": (lambda: nets["i3d"].model(video[None]), f"uint8 [1, {f}, R, R, 3], resized to 224"),
        "inception": (lambda: nets["inception"].model(video), f"uint8 [{f}, R, R, 3], resized to 299"),
        "c3d": (lambda: nets["c3d"].model(video[None]), f"uint8 [1, {f}, R, R, 3], to 128, crop 112"),
        "lpips": (lambda: nets["lpips"].model(frames, other), f"2 x [{f}, 3, R, R]"),
        "clip": (lambda: clip.encode_image(frames), f"[{f}, 3, R, R], resized to {clip.image_size[0]}"),
        "sound_clip": (lambda: sound_clip(mel), f"mel [1, 1, {args.n_mels}, 862] (10 s)"),
    }  # fmt: skip
    out: dict[str, Any] = {
        "resolution": args.resolution,
        "frames_per_video": args.frames,
        "problems": problems,
        "videos_per_s": {},
        "inputs": {},
    }
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for name, (call, shape) in calls.items():
            if name in NETWORKS and name not in nets:
                continue
            seconds = timed(call, args.repeats, sync)
            out["videos_per_s"][name] = 1.0 / seconds
            out["inputs"][name] = shape
    missing = [n for n in calls if n not in out["videos_per_s"]]
    out["missing"] = missing
    Path(args.stats).write_text(json.dumps(out, indent=2))
    if missing:
        print(f"not timed: {', '.join(missing)}: {problems}", file=sys.stderr)
        return 1
    return 0


def timed(
    call: Callable[[], Any], repeats: int, sync: Callable[[], None], warmup: int = 1
) -> float:
    """Median seconds of `repeats` calls after `warmup` (synchronising the device around each)."""
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


# ----------------------------------------------------------------------------------------------
# StyleGAN3 synthesis: ours, NVIDIA's official code, NVIDIA's test vectors


def step_synthesis(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    s = ctx.profile["synthesis"]

    def command(name: str, *extra: str) -> list[str]:
        cmd = [
            sys.executable, str(SCRIPT), "synthesis", "--device", ctx.device,
            "--stats", str(ctx.work / "stats" / f"{name}.json"),
            "--generator", json.dumps(ctx.profile["generator"]),
            "--batch", str(s["batch"]), "--repeats", str(s["repeats"]), *extra,
        ]  # fmt: skip
        return cmd + (["--fixtures", str(args.fixtures)] if args.fixtures is not None else [])

    official = ctx.files.get("official")
    if official is None:
        ran = run_child(ctx, "synthesis", command("synthesis"), ctx.limit("synthesis"))
        return checked_synthesis(ran.stats)
    build: dict[str, Any] = {"impl": "ref"}
    if ctx.device == "cuda":  # NVIDIA's CUDA ops are built first, within their own time limit
        limit = min(float(s["compile_s"]), ctx.limit("synthesis"))
        cmd = command("synthesis-build", "--official", official, "--build-only")
        try:
            build = run_child(ctx, "synthesis-build", cmd, limit).stats["official"]
        except StepError as e:
            partial = ctx.work / "stats" / "synthesis-build.json"
            build = json.loads(partial.read_text()).get("official", {}) if partial.is_file() else {}
            build = build | {"impl": "ref", "cuda_ops": build.get("cuda_ops") or f"not built: {e}"}
    cmd = command("synthesis", "--official", official, "--impl", build["impl"])
    result = run_child(ctx, "synthesis", cmd, ctx.limit("synthesis")).stats
    result["official"] |= {k: v for k, v in build.items() if k != "impl"}  # the build's time
    return checked_synthesis(result)


def checked_synthesis(result: dict[str, Any]) -> dict[str, Any]:
    """The synthesis figures, or a StepError where ours disagrees with NVIDIA's code or vectors
    (float32: under 1e-3, as the test vectors' README gives for a faithful implementation)."""
    vectors = {k: v for k, v in result.get("fixtures", {}).items() if isinstance(v, dict)}
    wrong = [f"test vectors {k}" for k, v in vectors.items() if not v["agrees"]]
    official = result.get("official")
    if isinstance(official, dict) and not official.get("agrees_fp32"):
        wrong.append(f"the official code ({official.get('impl')} path)")
    if wrong:
        raise StepError(f"our synthesis disagrees with {' and '.join(wrong)}", result)
    return result


def perturb(G: Any, seed: int) -> None:
    """Random biases, magnitude EMAs and w_avg, as NVIDIA's test vectors have: an implementation
    that drops a buffer or a gain then disagrees."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*G.named_parameters(), *G.named_buffers()]:
            if name.endswith("bias"):
                t.add_(torch.randn(t.shape, generator=gen) * 0.1)
            elif name.endswith("magnitude_ema"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("w_avg"):
                t.copy_(torch.randn(t.shape, generator=gen))


def synthesis(args: argparse.Namespace) -> int:
    """Child of `step_synthesis`: writes what it has measured to --stats after every part."""
    import torch

    from model.stylegan3 import Generator

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    out: dict[str, Any] = {}
    path = Path(args.stats)

    def save() -> None:
        path.write_text(json.dumps(out, indent=2))

    if args.build_only:
        out["official"] = {"impl": "building"}
        save()
        official_generator(args.official, "cuda", out["official"])
        save()
        return 0 if out["official"]["impl"] == "cuda" else 1
    torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32 for the comparisons, as NVIDIA's
    torch.backends.cudnn.allow_tf32 = False  # training loop sets it
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out |= {"tf32": False, "batch": args.batch}
    if args.fixtures is not None:
        out["fixtures"] = fixture_errors(args.fixtures, dev)
        save()
    kwargs = json.loads(args.generator)
    torch.manual_seed(0)
    G = Generator(**kwargs)
    perturb(G, 1)
    G = G.eval().requires_grad_(False).to(dev)
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(args.batch, G.z_dim, generator=gen).to(dev)
    ws = G.mapping(z, None, truncation_psi=0.7)
    shape = (args.batch, G.img_channels, G.img_resolution, G.img_resolution)
    proj = torch.randn(shape, generator=gen).to(dev)
    modes = {"fp32": {"force_fp32": True}, **({"mixed": {}} if cuda else {})}
    out["resolution"] = G.img_resolution
    out["modes"] = {
        "fp32": "force_fp32=True (the authors' code renders so)",
        "mixed": "float16 in the layers that the network marks use_fp16 (as model.train renders)",
    }
    out["ours"] = {"images_per_s": speeds(G.synthesis, ws, proj, modes, args.repeats, sync)}
    save()
    if args.official is None:
        out["official"] = "official path not available"
        save()
        return 0
    out["official"] = {"impl": args.impl if cuda else "ref"}
    official = official_generator(args.official, out["official"]["impl"], out["official"])(**kwargs)
    official.load_state_dict(G.state_dict())
    official = official.eval().requires_grad_(False).to(dev)

    def theirs(w: Any, **kw: Any) -> Any:
        return official.synthesis(w, noise_mode="const", **kw).float()

    record = out["official"]
    record["images_per_s"] = speeds(theirs, ws, proj, modes, args.repeats, sync)
    record["max_abs_error"], record["grad_rel_error"] = {}, {}
    for mode, kw in modes.items():
        (a, ga), (b, gb) = outputs(G.synthesis, ws, proj, kw), outputs(theirs, ws, proj, kw)
        record["max_abs_error"][mode] = (a - b).abs().max().item()
        record["grad_rel_error"][mode] = ((ga - gb).norm() / gb.norm()).item()
    ours, theirs_speed = out["ours"]["images_per_s"], record["images_per_s"]
    record["ours_speedup"] = {k: ours[k] / theirs_speed[k] for k in ours}
    record["agrees_fp32"] = record["max_abs_error"]["fp32"] < 1e-3
    save()
    return 0


def outputs(synth: Callable, ws: Any, proj: Any, kw: dict) -> tuple[Any, Any]:
    """Images and the gradient of sum(images * proj) with respect to ws."""
    w = ws.detach().clone().requires_grad_(True)
    img = synth(w, **kw).float()
    (img * proj).sum().backward()
    return img.detach(), w.grad.detach()


def speeds(synth: Callable, ws: Any, proj: Any, modes: dict, repeats: int, sync: Callable) -> dict:
    """Images/s of forward and of forward+backward (to ws) per precision mode."""
    import torch

    n = ws.shape[0]
    result = {}
    for mode, kw in modes.items():
        with torch.no_grad():
            fwd = timed(lambda kw=kw: synth(ws, **kw), repeats, sync, warmup=2)
        both = timed(lambda kw=kw: outputs(synth, ws, proj, kw), repeats, sync, warmup=2)
        result[f"{mode} fwd"] = n / fwd
        result[f"{mode} fwd+bwd"] = n / both
    return result


def official_generator(checkout: str, impl: str, record: dict) -> Any:
    """NVIDIA's `training.networks_stylegan3.Generator` class from a checkout, with its custom CUDA
    ops built (impl "cuda"; the time and any failure recorded in `record`) or set to their
    reference implementations (impl "ref")."""
    sys.path.insert(0, checkout)
    from torch_utils import custom_ops
    from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d
    from training import networks_stylegan3

    ops = (bias_act, upfirdn2d, filtered_lrelu)
    record["impl"] = "ref"
    if impl == "cuda":
        custom_ops.verbosity = "full"
        t0 = time.perf_counter()
        try:
            for op in ops:
                op._init()
            record["impl"] = "cuda"
        except Exception as e:  # any build failure: the reference path
            record["cuda_ops"] = f"build failed: {type(e).__name__}: {tail(str(e), 2)}"
        record["build_s"] = time.perf_counter() - t0
    if record["impl"] == "ref":
        for op in ops:
            op._init = lambda: False  # each op then runs its reference implementation
    return networks_stylegan3.Generator


def fixture_errors(folder: Path, dev: Any) -> dict[str, Any]:
    """Ours on this device against NVIDIA's test vectors (../shared/fixtures/stylegan3)."""
    import torch

    from model.stylegan3 import Generator

    found: dict[str, Any] = {}
    for name in FIXTURES:
        path = folder / name
        if not path.is_file():
            continue
        d = torch.load(path, weights_only=True)
        G = Generator(**json.loads(d["init_kwargs"])).eval().requires_grad_(False)
        G.load_state_dict(d["state_dict"])
        G = G.to(dev)
        v = {k: t.to(dev) for k, t in d.items() if isinstance(t, torch.Tensor)}
        err: dict[str, float] = {}
        _, grad = outputs(G.synthesis, v["wplus"], v["grad_proj"], {"force_fp32": True})
        err["grad_wplus_rel"] = ((grad - v["grad_wplus"]).norm() / v["grad_wplus"].norm()).item()
        with torch.no_grad():
            err["ws"] = (G.mapping(v["z"], None) - v["ws"]).abs().max().item()
            for code, img in (
                ("ws", "img"),
                ("ws_trunc_0.7", "img_trunc_0.7"),
                ("wplus", "img_wplus"),
            ):
                err[img] = (G.synthesis(v[code], force_fp32=True) - v[img]).abs().max().item()
            G.synthesis.input.transform.copy_(v["input_transform"])
            err["img_transform"] = (
                (G.synthesis(v["ws"], force_fp32=True) - v["img_transform"]).abs().max().item()
            )
        found[name] = err | {"agrees": max(err.values()) < 1e-3}
    return found or {"absent": str(folder)}


# ----------------------------------------------------------------------------------------------
# run


STEP_FUNCTIONS: dict[str, Callable[[Context, argparse.Namespace], dict[str, Any]]] = {
    "inputs": step_inputs,
    "train": step_train,
    "resume": step_resume,
    "synthesis": step_synthesis,
    "generate": step_generate,
    "evaluate": step_evaluate,
    "networks": step_networks,
}


def summary(name: str, result: dict[str, Any]) -> str:
    """One line of a finished step for the terminal."""
    if result["status"] != "ok":
        return f"[{name}] {result['status']}: {result.get('error') or result.get('reason')}"

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    keys = {
        "train": ("steps_per_s", "peak_cuda_allocated_bytes", "peak_rss_bytes", "losses_finite"),
        "resume": ("identical", "resumed_at_step"),
        "generate": ("sound_seconds_per_s", "frames_per_s"),
        "evaluate": ("videos_per_s",),
        "networks": ("videos_per_s",),
        "synthesis": ("ours", "official"),
    }.get(name, ())
    shown = ", ".join(f"{k} {fmt(result[k])}" for k in keys if k in result)
    return f"[{name}] ok in {result['seconds']:.1f} s" + (f": {shown}" if shown else "")


def run(args: argparse.Namespace) -> int:
    profile = PROFILES[args.device]
    if profile["data"]["resolution"] != profile["generator"]["img_resolution"]:
        raise SystemExit("PROFILES: data resolution and generator resolution differ")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))).resolve()
    (work / "stats").mkdir(parents=True, exist_ok=True)  # the children's figures
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    budget = args.budget_s if args.budget_s is not None else profile["budget_s"]
    ctx = Context(args.device, profile, work, out, out / LOG, env, time.monotonic(), budget)
    ctx.log.write_text("")
    if args.official is not None:
        ctx.files["official"] = str(args.official.resolve())
    report = Report(
        out / REPORT,
        {
            "format": "landscape-av gpu_check 1",
            "device": args.device,
            "ok": False,
            "profile": profile,
            "steps": {},
        },
    )
    selected = [s for s in STEPS if s in (args.only or STEPS)]
    try:
        if args.hide_packages:
            hide_packages(work, env)
        report.data["packages"] = ensure_packages(args.data, work, env)
        report.data["packages"]["hidden"] = args.hide_packages
        if (
            args.official is None
            and args.data is not None
            and (args.data / "official.tar.xz").is_file()
        ):
            ctx.files["official"] = str(unpack(args.data / "official.tar.xz", work / "official"))
        if args.fixtures is None and args.data is not None and (args.data / "fixtures").is_dir():
            args.fixtures = args.data / "fixtures"
        report.data["env"] = environment(args.device)
        report.data["budget_s"] = budget
        report.save()
        for name in STEPS:
            result = run_step(ctx, args, name, selected, report.data["steps"])
            report.data["steps"][name] = result
            report.save()
            print(summary(name, result), flush=True)
    except KeyboardInterrupt:
        report.data["interrupted"] = True
        report.save()
        print(f"interrupted; what was measured is in {report.path}", file=sys.stderr)
        return 130
    except StepError as e:
        report.data["error"] = str(e)
        report.save()
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_work and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    steps = report.data["steps"]
    report.data["ok"] = all(steps[s]["status"] == "ok" for s in selected)
    report.data["notes"] = notes(steps)
    report.data["seconds"] = time.monotonic() - ctx.started
    report.save()
    print(f"{'all steps passed' if report.data['ok'] else 'some steps failed'}: {report.path}")
    return 0 if report.data["ok"] else 1


def run_step(
    ctx: Context, args: argparse.Namespace, name: str, selected: list[str], done: dict[str, Any]
) -> dict[str, Any]:
    if name not in selected:
        return {"status": "skipped", "reason": "not selected (--only)"}
    need = NEEDS.get(name)
    if need is not None and done.get(need, {}).get("status") != "ok":
        return {"status": "skipped", "reason": f"needs {need}, which did not pass"}
    left = ctx.remaining()
    if left is not None and left < MIN_STEP_S:
        return {"status": "skipped", "reason": f"budget: {left:.0f} s left"}
    print(f"[{name}] running (limit {ctx.limit(name):.0f} s)", flush=True)
    ctx.commands = []
    t0 = time.monotonic()
    try:
        result = {"status": "ok", **STEP_FUNCTIONS[name](ctx, args)}
    except StepError as e:
        result = {"status": "failed", "error": str(e), **e.figures}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 (one broken step must not lose the others' figures)
        result = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=8),
        }
    result["seconds"] = time.monotonic() - t0
    result["commands"] = ctx.commands
    return result


def notes(steps: dict[str, Any]) -> list[str]:
    """What a reader of the figures should know that the figures do not say."""
    found = []
    train = steps.get("train", {})
    if (
        train.get("status") == "ok"
        and train.get("world_size") == 1
        and not train.get("process_group_backends")
    ):
        found.append(
            "torchrun --nproc_per_node 1 sets WORLD_SIZE=1, and model.runtime.setup joins a process "
            "group only for more than one process: no NCCL (or gloo) communicator and no DDP wrapper "
            "ran; that needs two or more GPUs"
        )
    if steps.get("evaluate", {}).get("status") == "ok":
        found.append("evaluate and networks time random stand-in networks, not the real ones")
    return found


# ----------------------------------------------------------------------------------------------
# pack: what the GPU machine needs and lacks, made here


def tree_size(paths: Iterator[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def repo_travel_size() -> int:
    """Bytes of the files that travel with every device call: tracked and untracked-not-ignored."""
    listed = command_output(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"]
    )
    return tree_size(REPO / name for name in (listed or "").splitlines())


def write_tar_xz(archive: Path, members: dict[str, Path]) -> int:
    """`archive` (xz) holding each folder or file of `members` under its name; returns its size."""
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:xz", preset=6) as tar:
        for name, path in members.items():
            tar.add(path, arcname=name, filter=_reset_owner)
    os.replace(tmp, archive)
    return archive.stat().st_size


def _reset_owner(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(args: argparse.Namespace) -> int:
    """Everything the GPU machine lacks into OUT (default .gpucheck/, git-ignored): the Python
    packages of `DEVICE_PACKAGES` installed for its Python (site.tar.xz), prepared training shards
    and test clips of a demo corpus (data.tar.xz), and optionally NVIDIA's official StyleGAN3
    code (official.tar.xz) and test vectors (fixtures/), within the tool's 64 MiB per call."""
    profile = PROFILES[args.profile]
    out = args.out.resolve()
    stage = out / ".stage"
    stage.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"profile": args.profile, "data": profile["data"]}
    old = json.loads((out / "pack.json").read_text()) if (out / "pack.json").is_file() else {}
    (out / "pack.json").unlink(missing_ok=True)  # written last: a pack cut short leaves none

    wanted = {name: version or versions([name])[name] for name, version in DEVICE_PACKAGES.items()}
    if old.get("packages") == wanted and (out / "site.tar.xz").is_file():
        print(f"site.tar.xz: kept ({', '.join(f'{k}=={v}' for k, v in wanted.items())})")
    else:
        wheels, site = stage / "wheels", stage / "site"
        shutil.rmtree(site, ignore_errors=True)
        platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
        foreign = ["--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp",
                   *platforms]  # fmt: skip
        pins = [f"{name}=={version}" for name, version in wanted.items()]
        pip = [sys.executable, "-m", "pip", "-q"]
        print(f"downloading wheels for Python {DEVICE_PYTHON} x86-64: {' '.join(pins)}", flush=True)
        subprocess.run(
            [*pip, "download", "--no-deps", *foreign, "-d", str(wheels), *pins], check=True
        )
        files = [
            str(w)
            for w in sorted(wheels.glob("*.whl"))
            if any(_wheel_is(w, n, v) for n, v in wanted.items())
        ]
        subprocess.run(
            [*pip, "install", "--no-deps", "--no-compile", "--target", str(site), *foreign, *files],
            check=True,
        )
        print("compressing the packages (xz; a few minutes)", flush=True)
        write_tar_xz(out / "site.tar.xz", {".": site})
    manifest["packages"] = wanted

    if args.corpus is not None:
        corpus = args.corpus
        manifest["corpus_build"] = f"given: {corpus}"
    else:
        corpus = stage / "corpus"
        build = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build",
                 *DEMO_BUILD, "--out", str(corpus)]  # fmt: skip
        print(f"building the demo corpus: {shlex.join(build[3:])}", flush=True)
        subprocess.run(build, check=True, cwd=stage)
        manifest["corpus_build"] = shlex.join(["landscape-av", *build[3:-2]])
    prepared = stage / "prepared"
    d = profile["data"]
    prepare = [
        sys.executable, "-m", "model.prepare", "--shards", str(corpus / "data" / "train-*.tar"),
        "--out", str(prepared), "--frames", str(d["frames"]), "--resolution", str(d["resolution"]),
        "--n-mels", str(d["n_mels"]),
    ]  # fmt: skip
    print(f"preparing the training shards: {shlex.join(prepare[1:])}", flush=True)
    subprocess.run(prepare, check=True)
    test = stage / "test"
    shutil.rmtree(test, ignore_errors=True)
    test.mkdir()
    for shard in sorted((corpus / "data").glob("test-*.tar")):
        shutil.copyfile(shard, test / shard.name)
    write_tar_xz(out / "data.tar.xz", {"prepared": prepared, "test": test})

    (out / "official.tar.xz").unlink(missing_ok=True)
    if args.official is not None:
        parts = {name: args.official / name for name in OFFICIAL_PARTS}
        absent = [n for n, p in parts.items() if not p.exists()]
        if absent:
            raise SystemExit(f"--official {args.official}: lacks {', '.join(absent)}")
        write_tar_xz(out / "official.tar.xz", parts)
        manifest["official"] = str(args.official)
    shutil.rmtree(out / "fixtures", ignore_errors=True)
    base = repo_travel_size() + tree_size(p for p in out.rglob("*") if stage not in p.parents)
    if args.fixtures is not None:
        for name in FIXTURES:
            src = args.fixtures / name
            if src.is_file() and base + src.stat().st_size <= CARRY_LIMIT - (1 << 20):
                (out / "fixtures").mkdir(exist_ok=True)
                shutil.copyfile(src, out / "fixtures" / name)
                base += src.stat().st_size
                manifest.setdefault("fixtures", []).append(name)
    manifest["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    (out / "pack.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if not args.keep_stage:
        shutil.rmtree(stage, ignore_errors=True)
    carried = tree_size(p for p in out.rglob("*") if stage not in p.parents)
    total = repo_travel_size() + carried
    for p in sorted(out.rglob("*")):
        if p.is_file() and stage not in p.parents:
            print(f"  {p.relative_to(out.parent)}  {p.stat().st_size / 2**20:.1f} MiB")
    print(
        f"travels per call: {total / 2**20:.1f} MiB of {CARRY_LIMIT / 2**20:.0f} MiB "
        f"(the repository's files {(total - carried) / 2**20:.1f} MiB)"
    )
    if total > CARRY_LIMIT:
        print(
            "too large for one device call: leave out --official or the fixtures", file=sys.stderr
        )
        return 1
    return 0


def _wheel_is(wheel: Path, name: str, version: str | None) -> bool:
    stem = wheel.name.split("-")
    return stem[0].lower() == name.replace("-", "_").lower() and stem[1] == version


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the check and write OUT/gpu_check.json")
    p.add_argument(
        "--device",
        choices=sorted(PROFILES),
        required=True,
        help="cuda: the paper's sizes; cpu: tiny",
    )
    p.add_argument(
        "--data", type=Path, help="a folder made by `pack` (packages, prepared shards, test clips)"
    )
    p.add_argument(
        "--corpus",
        type=Path,
        help="a built corpus instead of --data (its train shards are prepared here)",
    )
    p.add_argument(
        "--official",
        type=Path,
        help="a checkout of NVlabs/stylegan3 (default: the one in --data, if any)",
    )
    p.add_argument(
        "--fixtures",
        type=Path,
        help="NVIDIA's StyleGAN3 test vectors (default: the ones in --data, if any)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("gpu-check"),
        help="folder of the report, log and artifacts",
    )
    p.add_argument(
        "--work",
        type=Path,
        help="folder of weights, runs and videos (default: a temporary one, removed)",
    )
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    p.add_argument(
        "--budget-s", type=float, help="seconds for the whole run (default: the profile's)"
    )
    p.add_argument(
        "--hide-packages",
        action="store_true",
        help="import what the GPU machine lacks only from --data's site.tar.xz (a dry run of the carried path)",
    )
    p.add_argument(
        "--only",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help=f"comma list of steps to run, of: {','.join(STEPS)} (their inputs are made anyway)",
    )

    p = sub.add_parser("pack", help="prepare what the GPU machine lacks, here")
    p.add_argument("--out", type=Path, default=REPO / ".gpucheck")
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="cuda",
        help="the sizes to prepare the shards for",
    )
    p.add_argument("--corpus", type=Path, help="a built corpus (default: build the demo corpus)")
    p.add_argument("--official", type=Path, help="a checkout of NVlabs/stylegan3 to carry")
    p.add_argument(
        "--fixtures",
        type=Path,
        default=REPO.parent / "shared" / "fixtures" / "stylegan3",
        help="NVIDIA's StyleGAN3 test vectors to carry where they fit",
    )
    p.add_argument("--keep-stage", action="store_true", help="keep OUT/.stage (wheels, corpus)")

    p = sub.add_parser("child", help=argparse.SUPPRESS)
    p.add_argument("--stats", required=True)
    p.add_argument("--clip-config")
    p.add_argument("--module", required=True)
    p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("networks", help=argparse.SUPPRESS)
    for flag in ("--device", "--stats", "--weights", "--clip", "--clip-arch", "--sound-clip"):
        p.add_argument(flag, required=True)
    p.add_argument("--clip-config")
    for flag in ("--resolution", "--frames", "--n-mels", "--repeats"):
        p.add_argument(flag, type=int, required=True)

    p = sub.add_parser("synthesis", help=argparse.SUPPRESS)
    for flag in ("--device", "--stats", "--generator"):
        p.add_argument(flag, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--fixtures", type=Path)
    p.add_argument("--official")
    p.add_argument("--impl", choices=("cuda", "ref"), default="ref")
    p.add_argument("--build-only", action="store_true")

    args = parser.parse_args(argv)
    for name in ("data", "corpus", "official", "fixtures", "out", "work"):
        if isinstance(getattr(args, name, None), Path):
            setattr(args, name, getattr(args, name).resolve())
    if args.command == "run" and args.only:
        unknown = sorted(set(args.only) - set(STEPS))
        if unknown:
            parser.error(f"--only: unknown steps {', '.join(unknown)} (of {', '.join(STEPS)})")
        args.only = sorted(set(args.only) | {"inputs"}, key=STEPS.index)
    return {"run": run, "pack": pack, "child": child, "networks": networks, "synthesis": synthesis}[
        args.command
    ](args)


if __name__ == "__main__":
    sys.exit(main())
