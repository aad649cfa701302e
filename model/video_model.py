"""The assembled generator side of the video model: sound -> W+ trajectory -> frames.

    z ~ N(0, I) --G.mapping(psi)--> w [B, N, D]                      (random start latent, eq. 1)
    mel_full [B, 1, M, L] --E_a--> delta; w_hat = w + delta          (sound inversion, eq. 1)
    (w_hat, mel segments [B, T, 1, M, S], noise) --walker--> ws [B, T, N, D]   (eq. 4-6)
    ws --frozen G.synthesis--> frames [B, T, 3, R, R] in ~[-1, 1]

`SoundToLatents` holds the trainable parts (E_a and the walker) and is what DDP wraps and the
checkpoints store; the frozen StyleGAN3 generator stays outside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from model.encoder import EncoderConfig, SoundInversionEncoder, invert
from model.walker import LatentWalker, WalkerConfig


@dataclass
class VideoModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    walker: WalkerConfig = field(default_factory=WalkerConfig)
    truncation: float = 0.7  # psi of the random start latent w

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoModelConfig:
        enc = dict(d["encoder"])
        enc["depth"] = tuple(enc["depth"])
        return cls(EncoderConfig(**enc), WalkerConfig(**d["walker"]), d["truncation"])


class SoundToLatents(nn.Module):
    """E_a + walker: (mel_full, mel segments, start latent w) -> (w_hat [B,N,D], ws [B,T,N,D])."""

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        if (cfg.encoder.num_ws, cfg.encoder.w_dim) != (cfg.walker.num_ws, cfg.walker.w_dim):
            raise ValueError("encoder and walker disagree on num_ws / w_dim")
        self.cfg = cfg
        self.encoder = SoundInversionEncoder(cfg.encoder)
        self.walker = LatentWalker(cfg.walker)

    def forward(
        self,
        mel_full: torch.Tensor,
        mel: torch.Tensor,
        w: torch.Tensor,
        noise: torch.Tensor | None = None,
        smooth: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w_hat = invert(self.encoder, mel_full, w)  # [B, N, D]
        return w_hat, self.walker(w_hat, mel, noise, smooth)  # [B, T, N, D]


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, no gradients for its parameters (the frozen generator, CLIP, sound-CLIP)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def start_latents(
    G: nn.Module, batch: int, truncation: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random W+ latents from the mapping network: [B, num_ws, w_dim] (truncated toward w_avg)."""
    dev = G.mapping.w_avg.device
    z = torch.randn(batch, G.z_dim, generator=generator, device="cpu").to(dev)
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=truncation)


def render(G: nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """Frozen G in fp32 on a latent sequence: ws [B, T, N, D] -> frames [B, T, 3, R, R].

    Gradients flow to `ws` (not to G's frozen weights)."""
    B, T = ws.shape[:2]
    with torch.autocast(ws.device.type, enabled=False):
        img = G.synthesis(ws.flatten(0, 1).float())
    return img.view(B, T, *img.shape[1:])
