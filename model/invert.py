"""A photo into the frozen StyleGAN3's W+: `python -m model.invert --checkpoint RUN_DIR --image
photo.jpg --out photo.wplus.pt`.

The photo (any size or aspect) is centre-cropped to a square and resized to the generator's
resolution; a W+ latent w [num_ws, w_dim] is optimised (Adam) so that G.synthesis(w) matches it under

    MSE(G(w), photo) + lpips_weight * LPIPS(G(w), photo)

(see `model.perceptual`: LPIPS-VGG from `--lpips-vgg`; a tiny run uses a random stand-in). It starts
from the mean latent (w_avg at every layer) or, with `--init encoder --audio s.wav`, from the run's
sound-inversion encoder: w = E_a(mel) + w_avg (eq. 1 with the mean latent). The latent is saved
with `torch.save` ([num_ws, w_dim]) and its reconstruction as a PNG beside it (same name, `.png`).
This module is the command; the inversion is `model.apps.photos` (which model.edit and
model.generate use too).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from model import config, runtime
from model.apps.checkpoint import open_checkpoint
from model.apps.options import PhotoCommand, check_photo, photo_command_flags
from model.apps.photos import Inversion, mean_latent, photo_latent, to_png
from model.config import Flag, UsageError, command
from model.encoder import invert


@dataclass
class InvertConfig(PhotoCommand):
    """--image: the photo; --out: the W+ latent (.pt), its reconstruction beside it (.png)."""

    init: str = "mean"  # mean | encoder (E_a of --audio added to the mean latent)
    audio: str | None = None


def run_invert(cfg: InvertConfig) -> Inversion:
    """Invert `cfg.image`, save the latent at `cfg.out` and its reconstruction beside it."""
    check_photo(cfg.photo)
    if cfg.init == "encoder" and cfg.audio is None:
        raise UsageError("--init encoder needs --audio: E_a inverts that sound")
    rt = runtime.setup(cfg.device)
    run = open_checkpoint(cfg.checkpoint, rt.device)
    w0 = mean_latent(run.G)
    if cfg.init == "encoder":
        with torch.no_grad():
            w0 = invert(run.encoder(), run.mel(cfg.audio), w0)
    _, inv = photo_latent(run, cfg.image, cfg.photo, rt, w0)
    if inv is None:
        raise UsageError(f"--image {cfg.image}: already a W+ latent, nothing to invert")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(inv.w[0].cpu(), out)
    png = to_png(inv.image, out.with_suffix(".png"))
    print(
        f"{out}: W+ {list(inv.w.shape[1:])} after {cfg.photo.steps} steps from the "
        f"{cfg.init} latent; MSE {inv.mse_start:.4f} -> {inv.mse:.4f}; reconstruction {png}"
    )
    return inv


@command(
    "python -m model.invert",
    InvertConfig,
    photo_command_flags(
        "The photo.",
        "The W+ latent (.pt); its reconstruction goes to .png.",
        Flag(
            "init",
            "Start from the mean latent, or from E_a(--audio) + mean latent.",
            choices=("mean", "encoder"),
        ),
        Flag("audio", "Sound for --init encoder.", exists=True),
    ),
)
def cli(cfg: InvertConfig) -> None:
    """A photo into the frozen StyleGAN3's W+ (MSE + LPIPS), saved with its reconstruction."""
    run_invert(cfg)


def main(argv: list[str] | None = None) -> int:
    return config.run(cli, argv)  # `run` names a checkpoint's Run here


if __name__ == "__main__":
    sys.exit(main())
