"""Closed-form stand-ins for CLIP and F_a in the toy world (`model.toy_world`), by name.

- `PanClip` (CLIP): where the light of a frame lies along x, as the phase phi of the first
  horizontal harmonic of its luminance: image embedding [cos phi, sin phi, 1] / sqrt(2). Every text
  prompt embeds as [0, 0, 1] (the toy's text says nothing about the pan).
- `LoudnessClip` (F_a): the loudness q of a log-mel (mean over its frames of the loudest band, in
  [0, 1]) as the angle theta = KAPPA (q - Q0): [cos theta, sin theta, 0].

So eq. 2's cosine is cos(phi - theta) / sqrt(2), highest when the picture shows where the sound
says. A run names them in its config (`standins: toy`), and `model.train.load_frozen` loads them
for every command that reads the run's CLIP and F_a.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

KAPPA = math.pi
"""Radians of picture phase per unit of loudness (the stand-in F_a's slope)."""
Q0 = 0.4
"""Loudness that points the camera at phase 0 (where w_avg looks)."""
EMBED_DIM = 3


def luminance_phase(images: Tensor) -> Tensor:
    """(cos phi, sin phi) [N, 2] of frames [N, 3, H, W]: the phase of the first horizontal harmonic
    of their luminance profile (mean over channels and rows)."""
    profile = images.float().mean(dim=(1, 2))  # [N, W]
    x = torch.arange(profile.shape[-1], device=images.device) * (2 * math.pi / profile.shape[-1])
    re, im = (profile * torch.cos(x)).sum(-1), -(profile * torch.sin(x)).sum(-1)
    mag = torch.sqrt(re.square() + im.square() + 1e-12)
    return torch.stack([re / mag, im / mag], dim=-1)


class PanClip(nn.Module):
    """Stand-in CLIP: frames [N, 3, H, W] -> [cos phi, sin phi, 1] / sqrt(2); any text -> [0, 0, 1]."""

    embed_dim = EMBED_DIM

    def encode_image(self, images: Tensor) -> Tensor:
        phase = luminance_phase(images)
        return torch.cat([phase, torch.ones_like(phase[:, :1])], dim=1) / math.sqrt(2)

    def encode_text(self, prompts: list[str]) -> Tensor:
        return torch.tensor([[0.0, 0.0, 1.0]]).expand(len(prompts), -1)


@dataclass(frozen=True)
class LoudnessConfig:
    embed_dim: int = EMBED_DIM


def loudness(mel: Tensor) -> Tensor:
    """Loudness in [0, 1] of log-mels [B, 1, M, L]: mean over frames of the loudest band -> [B]."""
    return mel.amax(dim=2).mean(dim=(1, 2))


class LoudnessClip(nn.Module):
    """Stand-in F_a: log-mel [B, 1, M, L] -> [cos theta, sin theta, 0], theta = KAPPA (q - Q0)."""

    cfg = LoudnessConfig()

    def forward(self, mel: Tensor) -> Tensor:
        theta = KAPPA * (loudness(mel) - Q0)
        return torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)], dim=1)


STANDINS = ("toy",)
"""Named stand-ins for CLIP and F_a (`TrainConfig.standins`)."""


def load_standins(kind: str) -> tuple[nn.Module, nn.Module]:
    """(CLIP, F_a) stand-ins of a kind in `STANDINS`."""
    if kind != "toy":
        raise ValueError(f"unknown stand-ins {kind!r}; expected one of: {', '.join(STANDINS)}")
    return PanClip(), LoudnessClip()
