"""Image discriminator D_I (2-D PatchGAN on single frames) and video discriminator D_V (multiscale
3-D PatchGAN on frame sequences, as MoCoGAN-HD: two scales, 64 filters, 3 layers, 4x4x4 kernels,
InstanceNorm3d, LeakyReLU 0.2). Both return patch score maps for the least-squares losses; D_V returns
one map per scale.

Layer table of one PatchGAN (pix2pixHD layout, k=4, pad=2, ndf=64, n_layers=3):
    conv s2 -> 64, LReLU | conv s2 -> 128, IN, LReLU | conv s2 -> 256, IN, LReLU
    | conv s1 -> 512, IN, LReLU | conv s1 -> 1
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DiscriminatorConfig:
    ndf: int = 64  # filters of the first layer (doubles per layer, capped at 8 * ndf)
    n_layers: int = 3  # strided layers
    video_scales: int = 2  # D_V input scales (full, then average-pooled by 2 in t, h, w)


def _patchgan(dims: int, cin: int, ndf: int, n_layers: int) -> nn.Sequential:
    Conv = nn.Conv2d if dims == 2 else nn.Conv3d
    Norm = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
    layers: list[nn.Module] = [Conv(cin, ndf, 4, 2, 2), nn.LeakyReLU(0.2)]
    ch = ndf
    for i in range(1, n_layers + 1):
        nxt = min(ndf * 2**i, ndf * 8)
        stride = 2 if i < n_layers else 1
        layers += [Conv(ch, nxt, 4, stride, 2), Norm(nxt, affine=True), nn.LeakyReLU(0.2)]
        ch = nxt
    layers.append(Conv(ch, 1, 4, 1, 2))
    return nn.Sequential(*layers)


class ImageDiscriminator(nn.Module):
    """D_I: frames [N, 3, H, W] in [-1, 1] -> patch scores [N, 1, h, w]."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.net = _patchgan(2, 3, cfg.ndf, cfg.n_layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


class VideoDiscriminator(nn.Module):
    """D_V: clips [B, T, 3, H, W] in [-1, 1] -> list of patch scores [B, 1, t, h, w], one per scale."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.scales = nn.ModuleList(
            _patchgan(3, 3, cfg.ndf, cfg.n_layers) for _ in range(cfg.video_scales)
        )

    def forward(self, clips: torch.Tensor) -> list[torch.Tensor]:
        x = clips.transpose(1, 2)  # [B, 3, T, H, W]
        outs = []
        for i, net in enumerate(self.scales):
            if i:  # halve t, h, w (t only when there are 3 frames or more)
                kt = 3 if x.shape[2] >= 3 else 1
                x = F.avg_pool3d(
                    x, (kt, 3, 3), (kt // 2 + 1, 2, 2), (kt // 2, 1, 1), count_include_pad=False
                )
            outs.append(net(x))
        return outs
