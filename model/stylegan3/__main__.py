"""`python -m model.stylegan3 info CKPT` / `sample CKPT --seeds 0-7 --truncation 0.7 --out grid.png`."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model import runtime
from model.config import Flag, InputError, UsageError, command, group, run
from model.stylegan3.checkpoint import load_generator, read_config


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise UsageError(f"--seeds: cannot parse {part!r} (use e.g. 0-7,12)") from None
    return seeds


def render_grid(G: torch.nn.Module, seeds: list[int], trunc: float, batch: int = 4) -> Image.Image:
    """One image per seed (z from `np.random.RandomState(seed)`, as NVIDIA's scripts), in a grid."""
    device = next(G.parameters()).device
    images = []
    for i in range(0, len(seeds), batch):
        z = torch.from_numpy(
            np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds[i : i + batch]])
        ).to(device)
        c = torch.zeros([z.shape[0], G.c_dim], device=device) if G.c_dim else None
        with torch.no_grad():
            img = G(z.float(), c, truncation_psi=trunc)
        img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        images.append(img.cpu().numpy())
    images = np.concatenate(images)  # [N, R, R, C]
    n, r = images.shape[0], images.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros([rows * r, cols * r, images.shape[3]], dtype=np.uint8)
    for k, im in enumerate(images):
        grid[(k // cols) * r : (k // cols + 1) * r, (k % cols) * r : (k % cols + 1) * r] = im
    return Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)


def _load(path: str, allow_nonfinite: bool) -> torch.nn.Module:
    """The generator of a checkpoint; one that holds none is an input error (exit 1)."""
    try:
        return load_generator(path, allow_nonfinite=allow_nonfinite)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from e


CHECKPOINT = Flag("checkpoint", "", exists=True, argument=True)
NONFINITE = Flag(
    "allow_nonfinite", "Load weights that hold NaN or infinite values (refused by default)."
)


@dataclass
class InfoConfig:
    checkpoint: str = ""  # an official .pkl or a model.stylegan3 checkpoint
    allow_nonfinite: bool = False  # load weights holding NaN/inf (refused by default)


@dataclass
class SampleConfig:
    checkpoint: str = ""  # an official .pkl or a model.stylegan3 checkpoint
    seeds: str = "0-7"  # one image per seed: ranges and lists, e.g. 0-7,12
    truncation: float = 1.0  # psi
    out: str = "grid.png"
    device: str = "auto"
    allow_nonfinite: bool = False  # load weights holding NaN/inf (refused by default)


@command("info", InfoConfig, [CHECKPOINT, NONFINITE])
def info(cfg: InfoConfig) -> None:
    """Print a checkpoint's generator config and layers."""
    G = _load(cfg.checkpoint, cfg.allow_nonfinite)
    config = read_config(cfg.checkpoint)
    n_params = sum(p.numel() for p in G.parameters())
    print(json.dumps(config, indent=2, sort_keys=True))
    print(
        f"num_ws={G.num_ws} w_dim={G.w_dim} img_resolution={G.img_resolution} parameters={n_params:,}"
    )
    for name in G.synthesis.layer_names:
        print(f"  {name}: {getattr(G.synthesis, name).extra_repr()}")


@command(
    "sample",
    SampleConfig,
    [
        CHECKPOINT,
        Flag("seeds", "Seeds of the images: ranges and lists, e.g. 0-7,12."),
        Flag("truncation", "Truncation psi.", old=("--trunc",)),
        Flag("out", "Output PNG."),
        Flag("device", "Where to render.", choices=runtime.DEVICES),
        NONFINITE,
    ],
)
def sample(cfg: SampleConfig) -> None:
    """Render a grid of images to PNG."""
    seeds = parse_seeds(cfg.seeds)
    G = _load(cfg.checkpoint, cfg.allow_nonfinite).to(runtime.setup(cfg.device).device)
    render_grid(G, seeds, cfg.truncation).save(cfg.out)
    print(f"wrote {cfg.out}")


cli = group(
    "python -m model.stylegan3", "Inspect and sample StyleGAN3 checkpoints.", [info, sample]
)


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
