"""Recurrent latent walker (paper eq. 4-5): walks a W+ latent step by step, driven by the sound.

One GRU block per style group (coarse ws 0-2, mid 3-5, fine 6-15 at 16 ws; see `model.styles`), or
a single block for all ws (the paper's ablation). At step t = 1..T every block reads its own part of
the previous latent together with the code a_t of the audio segment that frame t shows (E_a's pooled
features of that segment, `SoundToLatents.segment_codes`); sound and a fresh noise vector n_t enter
the last FC layer:

    h_t    = GRU_g([w_{t-1}[g] ; a_t], h_{t-1}),       h_0 = 0,  w_0 = w_hat (eq. 1)
    w_t[g] = w_hat[g] + bound(w_{t-1}[g] - w_hat[g] + FC_g([h_t ; a_t ; n_t]))

`bound` keeps every w within `radius` of the start latent (a soft radial clamp, r * tanh(|d| / r)),
so a walk of any length stays in the generator's latent distribution; radius 0 leaves the walk
unbounded (the authors' code). Inference may smooth the walk (the authors' code:
s_t = 0.4 w_t + 0.6 s_{t-1}).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.styles import style_groups


@dataclass
class WalkerConfig:
    num_ws: int = 16
    w_dim: int = 512
    hidden: int = 512  # GRU hidden size
    audio_dim: int = 512  # code a_t of one audio segment
    noise_dim: int = 512
    single_block: bool = False  # ablation: one block walks all ws instead of coarse / mid / fine
    radius: float | None = None  # bound on each w's distance to w_hat; None: set from G; 0: none


class GroupWalker(nn.Module):
    """One GRU block: (its ws of w_{t-1}, a_t, n_t, h_{t-1}) -> (its step, h_t)."""

    def __init__(self, n_ws: int, cfg: WalkerConfig):
        super().__init__()
        self.n_ws, self.w_dim = n_ws, cfg.w_dim
        self.cell = nn.GRUCell(n_ws * cfg.w_dim + cfg.audio_dim, cfg.hidden)
        self.step = nn.Linear(cfg.hidden + cfg.audio_dim + cfg.noise_dim, n_ws * cfg.w_dim)
        nn.init.zeros_(self.step.bias)
        self.step.weight.data.mul_(0.1)  # small first steps: start close to w_hat

    def forward(
        self, w_prev: torch.Tensor, a: torch.Tensor, n: torch.Tensor, h: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """w_prev [B, n_ws, D], a [B, audio_dim], n [B, noise_dim] -> step [B, n_ws, D], h_t."""
        h = self.cell(torch.cat([w_prev.flatten(1), a], dim=1), h)
        step = self.step(torch.cat([h, a, n], dim=1))
        return step.view(-1, self.n_ws, self.w_dim), h


def bound(offset: torch.Tensor, radius: float) -> torch.Tensor:
    """Soft radial clamp of each w's offset [..., D] to norm < radius (identity near 0; 0: off)."""
    if not radius:
        return offset
    norm = offset.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return offset * (radius * torch.tanh(norm / radius) / norm)


class LatentWalker(nn.Module):
    """(w_hat [B, num_ws, D], audio codes [B, T, audio_dim], noise [B, T, noise_dim] | None)
    -> latents [B, T, num_ws, D]."""

    def __init__(self, cfg: WalkerConfig):
        super().__init__()
        self.cfg = cfg
        self.groups = [range(cfg.num_ws)] if cfg.single_block else style_groups(cfg.num_ws)
        self.blocks = nn.ModuleList(GroupWalker(len(g), cfg) for g in self.groups)

    def forward(
        self,
        w_hat: torch.Tensor,
        audio: torch.Tensor,
        noise: torch.Tensor | None = None,
        smooth: float | None = None,
    ) -> torch.Tensor:
        B, T = audio.shape[:2]
        if noise is None:
            noise = torch.randn(B, T, self.cfg.noise_dim, device=audio.device, dtype=audio.dtype)
        radius = self.cfg.radius or 0.0
        hidden: list[torch.Tensor | None] = [None] * len(self.blocks)
        w, out = w_hat, []
        for t in range(T):
            steps = []
            for i, (blk, g) in enumerate(zip(self.blocks, self.groups, strict=True)):
                step, hidden[i] = blk(w[:, g.start : g.stop], audio[:, t], noise[:, t], hidden[i])
                steps.append(step)
            w = w_hat + bound(w - w_hat + torch.cat(steps, dim=1), radius)
            out.append(w)
        ws = torch.stack(out, dim=1)  # [B, T, num_ws, D]
        return ws if smooth is None else smooth_walk(ws, smooth)


def smooth_walk(ws: torch.Tensor, momentum: float = 0.4) -> torch.Tensor:
    """Exponential smoothing along time: s_0 = w_0, s_t = momentum * w_t + (1 - momentum) * s_{t-1}."""
    out = [ws[:, 0]]
    for t in range(1, ws.shape[1]):
        out.append(momentum * ws[:, t] + (1 - momentum) * out[-1])
    return torch.stack(out, dim=1)
