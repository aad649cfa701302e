"""The edit chain of `EditOptions`, shared by model.edit (a photo) and model.generate (the start
latent of a walk): style mixing, sound mixing (eq. 1) and CLIP guidance, each at `--levels`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from model import runtime
from model.apps.checkpoint import Run
from model.apps.guidance import Guided, guide
from model.apps.levels import mix, parse_levels, style_latent
from model.apps.options import EditOptions, PhotoOptions
from model.apps.photos import photo_latent
from model.config import UsageError
from model.encoder import invert


def edit_latent(
    run: Run, w: Tensor, opts: EditOptions, photo: PhotoOptions, rt: runtime.Runtime
) -> tuple[Tensor, Guided | None]:
    """Style mixing, sound mixing and CLIP guidance of `w` [1, N, D] at `opts.levels`, in that
    order (each only when asked); returns the new latent and the guidance record."""
    levels = parse_levels(opts.levels)
    if opts.optimize and opts.audio is None:
        raise UsageError("--optimize needs --audio: it optimises toward that sound")
    if opts.style_from is not None:
        w = mix(w, style_latent(run, opts.style_from, photo, rt), levels)
    targets: dict[str, tuple[Tensor, float]] = {}
    if opts.audio is not None:
        mel = run.mel(opts.audio)
        if opts.optimize:
            with torch.no_grad():
                targets["sound"] = (run.sound_clip(opts.sound_clip)(mel).float(), 1.0)
        else:
            with torch.no_grad():
                w = mix(w, invert(run.encoder(), mel, w), levels, opts.strength)
    if opts.text is not None:
        targets["text"] = (run.clip(opts.clip).encode_text([opts.text]), opts.text_weight)
    if not targets:
        return w, None
    clip = run.clip(opts.clip)
    with runtime.progress(photo.steps, rt, photo.quiet, description="guide") as bar:
        g = guide(run.G, clip, w, targets, levels, photo.steps, photo.lr, opts.anchor, bar)
    return g.w, g


def start_latent(
    run: Run,
    w: Tensor,
    image: str | Path | None,
    opts: EditOptions,
    photo: PhotoOptions,
    rt: runtime.Runtime,
) -> Tensor:
    """model.generate's start latent: `image` (a photo, inverted, or a saved W+) in place of the
    random `w`, then style-mixed and text-guided by `opts` (the sound drives the walk, not this)."""
    if image is not None:
        w = photo_latent(run, image, photo, rt)[0]
    return edit_latent(run, w, opts, photo, rt)[0]
