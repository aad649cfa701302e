"""Training runtime shared by every training script: devices, DDP, seeding, AMP, checkpoints, logs.

Nothing here knows about a particular model. A training script does::

    rt = runtime.setup(device="auto", seed=cfg.seed)          # reads torchrun's env vars
    model = rt.wrap(model)                                     # DDP when world_size > 1
    amp = runtime.Precision(rt, "bf16")                        # autocast + GradScaler (fp16 only)
    ckpt = runtime.Checkpointer(run_dir, keep=3, every=1000)
    step = ckpt.resume({"model": model}, {"opt": opt}, amp.scaler, rt)   # 0: a new run
    batches = runtime.skip(loader, step * accum)                 # what the run has not seen yet
    writer = runtime.summary_writer(run_dir, rt)
    with runtime.progress(total, rt, quiet=False, start=step) as bar:
        while step < total:
            runtime.seed_step(seed, step, rt)                  # a resumed run repeats the same step
            for i, sync in runtime.micro_steps(model, accum):  # no_sync() on all but the last
                with sync, amp.autocast():
                    loss = ...
                amp.backward(loss / accum)
            amp.step(opt)
            step += 1
            bar.advance()
            if ckpt.due(step, total):
                ckpt.save(step, {"model": model}, {"opt": opt}, amp.scaler, rt, config=cfg_dict)

A checkpoint is a folder `RUN_DIR/checkpoints/step-XXXXXXXX/` holding `model.safetensors` (every
module's weights, keys prefixed `<name>.`), `state.pt` (optimizers, grad scaler, step, RNG states;
loadable with `weights_only=True`) and `config.json`. It is written to a temporary folder and renamed
into place, and an old one is renamed away before it is deleted, so a killed run never leaves a
half-written or half-deleted `step-*` folder; what a kill does leave (`.tmp-*`, `.trash-*`) is
removed when the run resumes (`Checkpointer.clean`). A run folder that holds checkpoints is resumed
from its newest; as every step reseeds the RNGs from (seed, step) and the batches already used are
skipped, a killed and resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.config import Flag, InputError, read_json
from model.torch_files import load_torch_file
from model.weights import read_safetensors

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILES = ("model.safetensors", "state.pt", "config.json")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

RUN_FLAGS = [
    Flag("device", "Where to train.", choices=DEVICES),
    Flag("precision", "Autocast precision on CUDA (CPU runs fp32).", choices=PRECISIONS),
    Flag("seed", "Seed of the run (each step reseeds from seed and step)."),
    Flag("steps", "Optimizer steps in total."),
    Flag("workers", "Loader worker processes per process.", old=("--num-workers",)),
    Flag("clip_grad", "Clip the gradient norm to this (0: off).", old=("--clip-norm",)),
    Flag("save_every", "Save a checkpoint every N steps (and at the last).", old=("--ckpt-every",)),
    Flag("keep", "Checkpoints kept (the newest)."),
    Flag("log_every", "Log the losses every N steps."),
    Flag("quiet", "No progress bar."),
]
"""Flags of every training command (`model.train`, `model.train_audio`), for the settings of the
same names in its config."""


# ----------------------------------------------------------------------------------------------
# Devices and processes


@dataclass
class Runtime:
    """Where this process runs and who it is among the torchrun processes."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs, prints and writes checkpoints."""
        return self.rank == 0

    def wrap(self, module: nn.Module, **ddp_kwargs: Any) -> nn.Module:
        """`module` moved to the device, wrapped in DistributedDataParallel when distributed."""
        module = module.to(self.device)
        if not self.distributed or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, **ddp_kwargs)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """`value` averaged over all processes (a copy; the input is untouched)."""
        value = value.detach().clone()
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "auto", seed: int | None = None) -> Runtime:
    """Runtime of this process; joins the process group when launched by torchrun.

    `device`: "auto" (CUDA when available), "cpu" or "cuda". torchrun's RANK / LOCAL_RANK /
    WORLD_SIZE select the process; the backend is NCCL on CUDA and gloo on CPU. `seed`, when given,
    seeds every generator with `seed + rank` (see `seed_everything`).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in DEVICES[1:]:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    rt = Runtime(device=dev, rank=rank, local_rank=local_rank, world_size=world_size)
    if seed is not None:
        seed_everything(seed, rank)
    return rt


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with `seed + rank`."""
    s = seed + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def step_seed(seed: int, step: int) -> int:
    """Seed of one optimizer step: the same for a step whether the run was resumed or not."""
    return (seed * 1_000_003 + step * 7919) % 2**31


def seed_step(seed: int, step: int, rt: Runtime) -> None:
    """Seed every generator for optimizer step `step` of a run seeded `seed` (see `step_seed`)."""
    seed_everything(step_seed(seed, step), rt.rank)


T = TypeVar("T")


def skip(batches: Iterable[T], used: int) -> Iterator[T]:
    """`batches` after the first `used`, which a resumed run has trained on already (they are read
    again: resuming costs up to one pass over the run's position)."""
    stream = iter(batches)
    for _ in range(used):
        next(stream)
    return stream


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def assert_in_sync(modules: dict[str, nn.Module], rt: Runtime) -> None:
    """Raise when any module's parameters differ between processes (a DDP sanity check)."""
    if not rt.distributed:
        return
    for name, m in modules.items():
        sums = torch.stack([p.detach().double().sum() for p in unwrap(m).parameters()])
        sums = sums.to(rt.device)
        gathered = [torch.empty_like(sums) for _ in range(rt.world_size)]
        dist.all_gather(gathered, sums)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"parameters of {name!r} differ between DDP processes")


def rank_zero_print(rt: Runtime, *args: Any) -> None:
    if rt.is_main:
        print(*args, flush=True)


# ----------------------------------------------------------------------------------------------
# Mixed precision


class Precision:
    """Autocast and loss scaling for one precision: "fp32", "bf16" or "fp16".

    On CPU everything runs in plain fp32 whatever is asked (CPU autocast is slow and the tests run
    there). bf16 uses autocast only; fp16 adds a GradScaler.
    """

    def __init__(self, rt: Runtime, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.device_type = rt.device.type
        self.precision = precision if self.device_type == "cuda" else "fp32"
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(
        self,
        optimizers: torch.optim.Optimizer | list[torch.optim.Optimizer],
        clip_norm: float | None = None,
    ) -> None:
        """Unscale, optionally clip gradients to `clip_norm` (per optimizer), step every optimizer,
        update the loss scale once, zero the gradients."""
        opts = optimizers if isinstance(optimizers, list) else [optimizers]
        for opt in opts:
            if clip_norm is not None:
                self.scaler.unscale_(opt)
                params = [p for g in opt.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            self.scaler.step(opt)
        self.scaler.update()
        for opt in opts:
            opt.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------------------------
# Gradient accumulation


def micro_steps(
    modules: nn.Module | list[nn.Module], accum: int
) -> Iterator[tuple[int, contextlib.AbstractContextManager]]:
    """Yield `(i, ctx)` for `accum` micro-steps; `ctx` is `no_sync()` of every DDP module on all but
    the last micro-step, so gradients are all-reduced once per optimizer step."""
    if accum < 1:
        raise ValueError(f"gradient accumulation must be >= 1, not {accum}")
    mods = modules if isinstance(modules, list) else [modules]
    ddp = [m for m in mods if isinstance(m, DistributedDataParallel)]
    for i in range(accum):
        if i < accum - 1 and ddp:
            stack = contextlib.ExitStack()
            for m in ddp:
                stack.enter_context(m.no_sync())
            yield i, stack
        else:
            yield i, contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
        "python_version": random.getstate()[0],
        "numpy": [torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((state["python_version"], tuple(py[:-1]), py[-1]))
    arr, *rest = state["numpy"]
    np.random.set_state(("MT19937", arr.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """The checkpoints of a run: `RUN_DIR/checkpoints/step-XXXXXXXX/`, one per `save`, the last
    `keep` kept; a run saves every `every` steps and at its last (`due`)."""

    def __init__(self, run_dir: str | Path, keep: int = 3, every: int = 1000):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / CHECKPOINT_DIR
        self.keep, self.every = keep, every

    def due(self, step: int, last: int) -> bool:
        """Whether a run ending at step `last` saves after step `step`."""
        return step % self.every == 0 or step == last

    def resume(
        self,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler | None,
        rt: Runtime,
    ) -> int:
        """The step a run starts at: the newest checkpoint's (loaded into the modules, optimizers
        and scaler) when the run folder holds one, else 0. Says which, on rank 0."""
        state = self.load_latest(modules, optimizers, scaler)
        step = state["step"] if state else 0
        what = f"resuming {self.run_dir} at step {step}" if state else f"new run {self.run_dir}"
        rank_zero_print(rt, f"{what} on {rt.device} x{rt.world_size}")
        return step

    def paths(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("step-*") if _complete(p))

    def clean(self) -> list[Path]:
        """Remove what an interrupted save or prune left (temporary folders, folders renamed for
        deletion, `step-*` folders lacking a file); returns the paths removed."""
        if not self.root.is_dir():
            return []
        litter = sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir()
            and (
                p.name.startswith((".tmp-", ".trash-"))
                or (p.name.startswith("step-") and not _complete(p))
            )
        )
        for path in litter:
            _remove(path)
        return litter

    def latest(self) -> Path | None:
        paths = self.paths()
        return paths[-1] if paths else None

    def save(
        self,
        step: int,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler | None,
        rt: Runtime,
        config: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path | None:
        """Save on rank 0 (others wait at a barrier); returns the folder written (None on others)."""
        final = self.root / f"step-{step:08d}"
        if rt.is_main:
            tmp = self.root / f".tmp-step-{step:08d}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            weights = {
                f"{name}.{k}": v.detach().cpu().clone().contiguous()
                for name, m in modules.items()
                for k, v in unwrap(m).state_dict().items()
            }
            save_file(weights, str(tmp / "model.safetensors"), metadata={"step": str(step)})
            state = {
                "step": step,
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "scaler": scaler.state_dict() if scaler is not None else {},
                "rng": _rng_state(),
                "extra": extra or {},
            }
            torch.save(state, tmp / "state.pt")
            (tmp / "config.json").write_text(json.dumps(config or {}, indent=2, default=str))
            _remove(final)
            os.replace(tmp, final)
            for old in self.paths()[: -self.keep] if self.keep > 0 else []:
                _remove(old)
        rt.barrier()
        return final if rt.is_main else None

    def load(
        self,
        path: str | Path,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer] | None = None,
        scaler: torch.amp.GradScaler | None = None,
        restore_rng: bool = True,
    ) -> dict[str, Any]:
        """Load a checkpoint folder into `modules` (and optimizers/scaler/RNG); returns its state
        (`step`, `extra`, ...). A checkpoint that cannot be loaded (unreadable, out of bounds, of
        another model) is an InputError naming it."""
        path = Path(path)
        try:
            load_weights(path, modules)
            state = load_torch_file(path / "state.pt")
            for name, opt in (optimizers or {}).items():
                opt.load_state_dict(state["optimizers"][name])
            if scaler is not None and state["scaler"]:
                scaler.load_state_dict(state["scaler"])
            if restore_rng:
                _set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{path}: cannot resume from it: {type(e).__name__}: {e}") from e
        return state

    def load_latest(
        self,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer] | None = None,
        scaler: torch.amp.GradScaler | None = None,
    ) -> dict[str, Any] | None:
        """Resume from the newest complete checkpoint (after `clean`); None when the run has none yet."""
        self.clean()
        path = self.latest()
        return None if path is None else self.load(path, modules, optimizers, scaler)


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CHECKPOINT_FILES)


def _remove(path: Path) -> None:
    """Delete a folder by renaming it `.trash-NAME` first: a kill midway leaves no partial `path`."""
    trash = path if path.name.startswith(".trash-") else path.with_name(f".trash-{path.name}")
    if trash != path:
        shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(path, trash)
        except FileNotFoundError:  # absent, or another process removed it first
            return
    shutil.rmtree(trash, ignore_errors=True)


def load_weights(path: str | Path, modules: dict[str, nn.Module]) -> None:
    """Load `model.safetensors` of a checkpoint folder into the named modules: every tensor of
    each module present, of its dtype and shape, and finite (`model.weights.read_safetensors`);
    the file may hold other modules too."""
    expected = {
        f"{name}.{k}": v for name, m in modules.items() for k, v in unwrap(m).state_dict().items()
    }
    weights = read_safetensors(Path(path) / "model.safetensors", expected, strict=False)
    for name, m in modules.items():
        prefix = f"{name}."
        unwrap(m).load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )


def read_config(path: str | Path) -> dict[str, Any]:
    """`config.json` of a checkpoint folder: a JSON object, read within `model.config.read_json`'s
    bounds (ValueError naming the file)."""
    config = read_json(Path(path) / "config.json")
    if not isinstance(config, dict):
        raise ValueError(f"{path}/config.json: a {type(config).__name__}, not a JSON object")
    return config


# ----------------------------------------------------------------------------------------------
# Logs and progress


def summary_writer(run_dir: str | Path, rt: Runtime):
    """TensorBoard SummaryWriter on `RUN_DIR/tb` for rank 0; None elsewhere."""
    if not rt.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(Path(run_dir) / "tb"))


class _StepRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- steps/s" if speed is None else f"{speed:.2f} steps/s", style="cyan")


class StepBar:
    """A rich progress bar of optimizer steps (silent off rank 0 or when quiet)."""

    def __init__(self, total: int, start: int, rt: Runtime, quiet: bool, description: str):
        self.enabled = rt.is_main and not quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _StepRate(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not self.enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, info="")
        self.started = time.perf_counter()

    def advance(self, info: str = "") -> None:
        self.progress.update(self.task, advance=1, info=info)

    def __enter__(self) -> StepBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def progress(
    total: int, rt: Runtime, quiet: bool = False, start: int = 0, description: str = "train"
) -> StepBar:
    return StepBar(total, start, rt, quiet, description)
