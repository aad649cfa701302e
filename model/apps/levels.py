"""Edits at W+ levels: `--levels` (the walker's coarse / mid / fine split, `model.styles`), moving
only those ws toward another latent (`mix`), and the source of style mixing (`style_latent`)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from model import runtime
from model.apps.checkpoint import Run
from model.apps.options import PhotoOptions
from model.apps.photos import photo_latent
from model.config import UsageError
from model.styles import GROUP_NAMES, style_groups
from model.video_model import start_latents


def parse_levels(text: str) -> tuple[str, ...]:
    """'coarse,fine' -> ('coarse', 'fine'); unknown names raise one line."""
    levels = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in levels if t not in GROUP_NAMES]
    if bad or not levels:
        raise UsageError(f"--levels {text!r}: use names from {', '.join(GROUP_NAMES)}")
    return levels


def level_mask(num_ws: int, levels: tuple[str, ...], device: torch.device) -> Tensor:
    """[1, num_ws, 1] bool: True on the ws of `levels`."""
    mask = torch.zeros(1, num_ws, 1, dtype=torch.bool, device=device)
    for name, layers in zip(GROUP_NAMES, style_groups(num_ws), strict=True):
        if name in levels:
            mask[:, layers.start : layers.stop] = True
    return mask


def mix(w: Tensor, source: Tensor, levels: tuple[str, ...], strength: float = 1.0) -> Tensor:
    """w with the ws of `levels` moved `strength` of the way to `source`; the rest untouched."""
    mask = level_mask(w.shape[1], levels, w.device)
    return torch.where(mask, torch.lerp(w, source, strength), w)


def style_latent(run: Run, source: str, photo: PhotoOptions, rt: runtime.Runtime) -> Tensor:
    """W+ of `--style-from`: a picture or saved latent, or the mapping of an integer seed."""
    if Path(source).is_file():
        return photo_latent(run, source, photo, rt)[0]
    try:
        seed = int(source)
    except ValueError:
        raise UsageError(f"--style-from {source}: neither a file nor an integer seed") from None
    gen = torch.Generator().manual_seed(seed)
    return start_latents(run.G, 1, run.truncation, generator=gen)
