"""A sound -> the walk's W+ latents -> frames, in memory: the API behind model.generate and the
evaluation harness. `walk_sound` walks at the model's own rate (`model.fps` steps per second of
sound, as in training) and resamples the walk to any output rate; `generate_video` renders it;
`walk_drift` measures how far a sound has carried the walk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from model.audio import MelConfig, clip_mels
from model.video_model import SoundToLatents, render, start_latents

INTERPOLATIONS = ("linear", "hold")


def resample_walk(ws: torch.Tensor, steps_per_second: float, fps: float, frames: int, how: str):
    """Walked latents ws [B, T, N, D] at `steps_per_second` -> `frames` latents at `fps`: output frame
    j at time j / fps takes walk position j * steps_per_second / fps, between two walked latents
    linearly (`linear`) or the earlier one (`hold`), clamped to the walk's last step."""
    if how not in INTERPOLATIONS:
        raise ValueError(f"interpolate {how!r}: expected one of {', '.join(INTERPOLATIONS)}")
    pos = (torch.arange(frames, dtype=torch.float64) * steps_per_second / fps).clamp(
        max=ws.shape[1] - 1
    )
    lo = pos.floor().long()
    if how == "hold":
        return ws[:, lo]
    hi = (lo + 1).clamp(max=ws.shape[1] - 1)
    frac = (pos - lo).to(ws.dtype).to(ws.device).view(1, -1, 1, 1)
    return torch.lerp(ws[:, lo], ws[:, hi], frac)


@torch.no_grad()
def walk_sound(
    latents: SoundToLatents,
    G: torch.nn.Module,
    wave: torch.Tensor,
    n_mels: int,
    fps: float | None = None,
    seed: int = 0,
    truncation: float | None = None,
    smooth: float | None = 0.4,
    interpolate: str = "linear",
    w: torch.Tensor | None = None,
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """W+ latents [1, F, N, D] of a mono 44.1 kHz waveform [S]: F = round(seconds * fps) output
    frames (fps None: the model's rate, no interpolation). `w` [1, N, D] replaces the random start
    latent; `seed` draws it and the walk noise. `refine` maps the walked latents [1, T, N, D] (the
    model's rate) before they are resampled (`guidance.guide_walk`: the per-step text constraint)."""
    mel_cfg = MelConfig(n_mels=n_mels)
    rate = latents.cfg.fps
    seconds = wave.shape[0] / mel_cfg.sample_rate
    steps = max(1, round(seconds * rate))
    if wave.shape[0] < steps * mel_cfg.hop:
        raise ValueError(f"{wave.shape[0]} samples are too short for one frame")
    mel_full, mel = clip_mels(wave, mel_cfg, steps)  # [1, M, L], [T, 1, M, S]
    dev = next(latents.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    psi = latents.cfg.truncation if truncation is None else truncation
    w = start_latents(G, 1, psi, generator=gen) if w is None else w.to(dev)
    noise = torch.randn(1, steps, latents.cfg.walker.noise_dim, generator=gen).to(dev)
    _, ws = latents(mel_full[None].to(dev), mel[None].to(dev), w, noise, smooth)  # [1, T, N, D]
    ws = ws if refine is None else refine(ws)
    fps = rate if fps is None else fps
    return resample_walk(ws, rate, fps, max(1, round(seconds * fps)), interpolate)


def render_frames(G: torch.nn.Module, ws: torch.Tensor, chunk: int = 16) -> Iterator[torch.Tensor]:
    """Frames of latents ws [1, F, N, D], `chunk` at a time: [<=chunk, 3, R, R] each (unclamped)."""
    for start in range(0, ws.shape[1], chunk):
        yield render(G, ws[:, start : start + chunk])[0]


@torch.no_grad()
def generate_video(
    latents: SoundToLatents, G: torch.nn.Module, wave: torch.Tensor, n_mels: int, **walk: Any
) -> torch.Tensor:
    """Frames [F, 3, R, R] in [-1, 1] of a mono 44.1 kHz waveform [S] (`walk`: see `walk_sound`)."""
    ws = walk_sound(latents, G, wave, n_mels, **walk)
    return torch.cat(list(render_frames(G, ws))).clamp(-1, 1)


def walk_drift(ws: torch.Tensor, fps: float, seconds: tuple[float, ...] = (1, 10, 60)) -> dict:
    """How far a sound has carried the walk: mean over ws of ||w(s) - w(0)|| for ws [B, T, N, D] at
    `fps`, at each of `seconds` (the walk's last latent for a time past its end)."""
    last = ws.shape[1] - 1
    return {
        s: (ws[:, min(round(s * fps), last)] - ws[:, 0]).norm(dim=-1).mean().item() for s in seconds
    }
