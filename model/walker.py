"""Recurrent latent walker (paper eq. 4-6): walks a W+ latent frame by frame, driven by the sound.

Three GRU blocks, one per style group (coarse ws 0-2, mid 3-5, fine 6-15 at 16 ws; see
`model.styles`). At step t every block reads the encoded audio segment a_t (the segment of the clip
that frame t shows) concatenated with a fresh noise vector n_t, and predicts a step for its ws:

    h_t       = GRU_g([a_t ; n_t], h_{t-1}),   h_0 = tanh(Linear(w_hat[g]))   (the start conditions h)
    w_t[g]    = w_{t-1}[g] + Linear(h_t),      w_0 = w_hat                     (residual walk)

for t = 1..T; frame t is rendered from w_t, so each frame carries its own audio segment.

The segment encoder is a small trainable conv net on the segment's log-mel [1, n_mels, S]; we chose
it over frozen sound-CLIP features because a 1/T-long segment is far shorter than the 10 s windows
sound-CLIP is trained on. Inference may smooth the walk (the paper's code: s_t = 0.4 w_t + 0.6 s_{t-1}).
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
    audio_dim: int = 512  # encoded audio segment
    noise_dim: int = 512
    layers: int = 1  # stacked GRU layers per block
    seg_width: int = 32  # channels of the segment encoder's first conv


class SegmentEncoder(nn.Module):
    """Log-mel segment [N, 1, n_mels, S] -> [N, audio_dim]: 4 strided conv blocks + global pooling."""

    def __init__(self, audio_dim: int, width: int):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(1, cout), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(8 * width, audio_dim)

    def forward(self, seg: torch.Tensor) -> torch.Tensor:
        return self.out(self.convs(seg * 2 - 1).mean(dim=(2, 3)))


class GroupWalker(nn.Module):
    """One GRU block walking the ws of one style group."""

    def __init__(self, n_ws: int, cfg: WalkerConfig):
        super().__init__()
        self.n_ws, self.w_dim = n_ws, cfg.w_dim
        self.init_h = nn.Linear(n_ws * cfg.w_dim, cfg.layers * cfg.hidden)
        self.gru = nn.GRU(cfg.audio_dim + cfg.noise_dim, cfg.hidden, cfg.layers, batch_first=True)
        self.step = nn.Linear(cfg.hidden, n_ws * cfg.w_dim)
        nn.init.zeros_(self.step.bias)
        self.step.weight.data.mul_(0.1)  # small first steps: start close to w_hat

    def forward(self, w0: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """w0 [B, n, D], inputs [B, T, audio+noise] -> walked ws [B, T, n, D]."""
        B, T = inputs.shape[:2]
        h0 = torch.tanh(self.init_h(w0.flatten(1)))  # [B, layers*hidden]
        h0 = h0.view(B, self.gru.num_layers, -1).transpose(0, 1).contiguous()
        out, _ = self.gru(inputs, h0)  # [B, T, hidden]
        steps = self.step(out).view(B, T, self.n_ws, self.w_dim)
        return w0.unsqueeze(1) + steps.cumsum(dim=1)


class LatentWalker(nn.Module):
    """(w_hat [B, num_ws, D], segments [B, T, 1, n_mels, S], noise [B, T, noise_dim] | None)
    -> latents [B, T, num_ws, D]."""

    def __init__(self, cfg: WalkerConfig):
        super().__init__()
        self.cfg = cfg
        self.groups = style_groups(cfg.num_ws)
        self.segments = SegmentEncoder(cfg.audio_dim, cfg.seg_width)
        self.blocks = nn.ModuleList(GroupWalker(len(g), cfg) for g in self.groups)

    def forward(
        self,
        w_hat: torch.Tensor,
        segments: torch.Tensor,
        noise: torch.Tensor | None = None,
        smooth: float | None = None,
    ) -> torch.Tensor:
        B, T = segments.shape[:2]
        a = self.segments(segments.flatten(0, 1)).view(B, T, -1)  # [B, T, audio_dim]
        if noise is None:
            noise = torch.randn(B, T, self.cfg.noise_dim, device=a.device, dtype=a.dtype)
        x = torch.cat([a, noise], dim=-1)  # [B, T, audio_dim + noise_dim]
        ws = torch.cat(
            [
                blk(w_hat[:, g.start : g.stop], x)
                for blk, g in zip(self.blocks, self.groups, strict=True)
            ],
            dim=2,
        )  # [B, T, num_ws, D]
        return ws if smooth is None else smooth_walk(ws, smooth)


def smooth_walk(ws: torch.Tensor, momentum: float = 0.4) -> torch.Tensor:
    """Exponential smoothing along time: s_0 = w_0, s_t = momentum * w_t + (1 - momentum) * s_{t-1}."""
    out = [ws[:, 0]]
    for t in range(1, ws.shape[1]):
        out.append(momentum * ws[:, t] + (1 - momentum) * out[-1])
    return torch.stack(out, dim=1)
