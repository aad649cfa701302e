"""`python -m model.stylegan3 info CKPT` / `sample CKPT --seeds 0-7 --trunc 0.7 --out grid.png`."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import torch
from PIL import Image

from model.stylegan3.checkpoint import load_generator, read_config


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise SystemExit(f"--seeds: cannot parse {part!r} (use e.g. 0-7,12)") from None
    return seeds


def render_grid(G: torch.nn.Module, seeds: list[int], trunc: float, batch: int = 4) -> Image.Image:
    """One image per seed (z from `np.random.RandomState(seed)`, as NVIDIA's scripts), in a grid."""
    images = []
    for i in range(0, len(seeds), batch):
        z = torch.from_numpy(
            np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds[i : i + batch]])
        )
        c = torch.zeros([z.shape[0], G.c_dim]) if G.c_dim else None
        with torch.no_grad():
            img = G(z.float(), c, truncation_psi=trunc)
        images.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    images = np.concatenate(images)  # [N, R, R, C]
    n, r = images.shape[0], images.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros([rows * r, cols * r, images.shape[3]], dtype=np.uint8)
    for k, im in enumerate(images):
        grid[(k // cols) * r : (k // cols + 1) * r, (k % cols) * r : (k % cols + 1) * r] = im
    return Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.stylegan3", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a checkpoint's generator config")
    info.add_argument("checkpoint")
    sample = sub.add_parser("sample", help="render a grid of images to PNG")
    sample.add_argument("checkpoint")
    sample.add_argument("--seeds", default="0-7")
    sample.add_argument("--trunc", type=float, default=1.0, help="truncation psi")
    sample.add_argument("--out", default="grid.png")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            config = read_config(args.checkpoint)
            G = load_generator(args.checkpoint)
            n_params = sum(p.numel() for p in G.parameters())
            print(json.dumps(config, indent=2, sort_keys=True))
            print(
                f"num_ws={G.num_ws} w_dim={G.w_dim} img_resolution={G.img_resolution} parameters={n_params:,}"
            )
            for name in G.synthesis.layer_names:
                print(f"  {name}: {getattr(G.synthesis, name).extra_repr()}")
            return 0
        G = load_generator(args.checkpoint)
        render_grid(G, parse_seeds(args.seeds), args.trunc).save(args.out)
        print(f"wrote {args.out}")
        return 0
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
