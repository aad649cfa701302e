"""Recurrent latent walker (paper eq. 4-5): walks a W+ latent step by step, driven by the sound.

One GRU block per style group (coarse, mid, fine; see `model.styles`), or a single block for all ws
(the paper's ablation). Step t = 1, 2, ... reads audio segment t - 1 (eq. 4's x^{t-1}); every block
reads its own ws. Two kinds (`WalkerConfig.kind`):

    eq4 (the paper, default):  h_t = GRU_g((E_a(x^{t-1}) + w^{t-1})[g], h_{t-1})
    pooled (issue 11's):       h_t = GRU_g([w^{t-1}[g] ; a_{t-1}], h_{t-1})

and in both the encoded sound a_{t-1} (E_a's pooled features of the segment, `SoundToLatents`) and
a fresh noise vector n_t enter the last FC layer (sec. 4.1), whose output is the step:

    w^t[g] = anchor_t[g] + bound(w^{t-1}[g] - anchor_t[g] + FC_g([h_t ; a_{t-1} ; n_t]))

with w^0 = w_hat (eq. 1) and h_0 = 0. The anchor is w_hat (a long sound re-anchors the walk at each
window of the clip length the model trained on: `model.generate.walk_sound`). `bound` (`model.styles`)
keeps every w within `radius` of the anchor (a soft radial clamp, r * tanh(|d| / r)), so a walk of any length
stays in the generator's latent distribution; radius 0 leaves the walk unbounded (the authors'
code). `smooth_walk` is the authors' code's inference smoothing, applied only to runs trained with
it (`model.video_model.VideoModelConfig.smooth`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.styles import bound, style_groups

KINDS = ("eq4", "pooled")
"""Walker kinds: what the recurrent block reads besides its hidden state (module docstring)."""


@dataclass
class WalkerConfig:
    num_ws: int = 16
    w_dim: int = 512
    hidden: int = 512  # GRU hidden size
    audio_dim: int = 512  # encoded sound a_t of one audio segment (into the last FC)
    noise_dim: int = 512  # noise n_t (into the last FC)
    kind: str = "eq4"  # one of KINDS
    single_block: bool = False  # ablation: one block walks all ws instead of coarse / mid / fine
    radius: float | None = (
        None  # bound on each w's distance to the anchor; None: set from G; 0: none
    )


class GroupWalker(nn.Module):
    """One GRU block: (its ws of the recurrent input, a_t, n_t, h_{t-1}) -> (its step, h_t)."""

    def __init__(self, n_ws: int, cfg: WalkerConfig):
        super().__init__()
        self.n_ws, self.w_dim = n_ws, cfg.w_dim
        extra = cfg.audio_dim if cfg.kind == "pooled" else 0
        self.cell = nn.GRUCell(n_ws * cfg.w_dim + extra, cfg.hidden)
        self.step = nn.Linear(cfg.hidden + cfg.audio_dim + cfg.noise_dim, n_ws * cfg.w_dim)
        nn.init.zeros_(self.step.bias)
        self.step.weight.data.mul_(0.1)  # small first steps: start close to w_hat

    def forward(
        self, x: torch.Tensor, a: torch.Tensor, n: torch.Tensor, h: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, n_ws * D (+ audio_dim)], a [B, audio_dim], n [B, noise_dim] -> step [B, n_ws, D],
        h_t."""
        h = self.cell(x, h)
        step = self.step(torch.cat([h, a, n], dim=1))
        return step.view(-1, self.n_ws, self.w_dim), h


class LatentWalker(nn.Module):
    """(w^0 [B, N, D], anchors [B, S, N, D], sound codes a [B, S, audio_dim], sound latents
    E_a(x) [B, S, N, D] (kind eq4), noise [B, S, noise_dim] | None) -> w^1..w^S [B, S, N, D]:
    step s + 1 reads segment s of each sequence."""

    def __init__(self, cfg: WalkerConfig):
        super().__init__()
        if cfg.kind not in KINDS:
            raise ValueError(
                f"unknown walker kind {cfg.kind!r}; expected one of: {', '.join(KINDS)}"
            )
        self.cfg = cfg
        self.groups = [range(cfg.num_ws)] if cfg.single_block else style_groups(cfg.num_ws)
        self.blocks = nn.ModuleList(GroupWalker(len(g), cfg) for g in self.groups)

    def forward(
        self,
        w0: torch.Tensor,
        anchors: torch.Tensor,
        codes: torch.Tensor,
        sound: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, S = codes.shape[:2]
        if noise is None:
            noise = torch.randn(B, S, self.cfg.noise_dim, device=codes.device, dtype=codes.dtype)
        if self.cfg.kind == "eq4" and sound is None:
            raise ValueError("the eq4 walker reads E_a of each segment: pass `sound`")
        hidden: list[torch.Tensor | None] = [None] * len(self.blocks)
        w, out = w0, []
        for s in range(S):
            steps = []
            for i, (blk, g) in enumerate(zip(self.blocks, self.groups, strict=True)):
                if self.cfg.kind == "eq4":  # eq. 4: E_a(x^{t-1}) + w^{t-1}
                    x = (sound[:, s, g.start : g.stop] + w[:, g.start : g.stop]).flatten(1)
                else:
                    x = torch.cat([w[:, g.start : g.stop].flatten(1), codes[:, s]], dim=1)
                step, hidden[i] = blk(x, codes[:, s], noise[:, s], hidden[i])
                steps.append(step)
            anchor = anchors[:, s]
            w = anchor + bound(w - anchor + torch.cat(steps, dim=1), self.cfg.radius)
            out.append(w)
        return torch.stack(out, dim=1)  # [B, S, num_ws, D]


def smooth_walk(ws: torch.Tensor, momentum: float = 0.4) -> torch.Tensor:
    """Exponential smoothing along time: s_0 = w_0, s_t = momentum * w_t + (1 - momentum) * s_{t-1}."""
    out = [ws[:, 0]]
    for t in range(1, ws.shape[1]):
        out.append(momentum * ws[:, t] + (1 - momentum) * out[-1])
    return torch.stack(out, dim=1)
