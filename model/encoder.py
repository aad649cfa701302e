"""Sound inversion encoder E_a: a log-mel image -> a W+ offset [B, num_ws, w_dim] (paper sec. 3.1).

Shape of pSp's GradualStyleEncoder: an IR-SE ResNet body on the mel image, three feature taps (end of
stages 2, 3, 4), a feature pyramid (1x1 laterals + bilinear upsample-add) and one map-to-style head
per w: strided 3x3 convs + LeakyReLU down to 1x1, then a Linear. Coarse heads read the smallest map,
mid heads the middle one, fine heads the largest (groups from `model.styles.style_groups`).

At the paper's size (in_size 256, width 64, depth (3, 4, 14, 3) = IR-SE-50, w_dim 512) the taps are
[128,64,64], [256,32,32], [512,16,16]. The mel [B,1,n_mels,L] in [0,1] is resized to in_size x in_size
and fed to a 1-channel stem (instead of repeating it to 3 channels).

Eq. 1: w_hat = E_a(x) + w, with w a random latent from the generator's mapping network (`invert`).
Each w of the offset E_a(x) is bounded like the walk (`model.styles.bound`, `radius`), so w_hat stays
in the generator's range however loud or long the training pushes it. `encode` also gives the
body's globally pooled last-stage features [B, 8 * width]: the walker's encoded sound of one audio
segment (eq. 4).

Normalisation is GroupNorm where pSp has BatchNorm: the paper trains at batch size 1 per GPU, where
batch statistics are noise, and train and eval mode then give the same output. The stem has no
normalisation, so the residual stream keeps the sound's level (a per-sample norm there would erase
loudness, which is what onsets are made of).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.styles import bound, style_groups


@dataclass
class EncoderConfig:
    num_ws: int = 16
    w_dim: int = 512
    in_size: int = 256  # mel image side after resizing
    width: int = 64  # channels of stage 1; stages have width * (1, 2, 4, 8)
    depth: tuple[int, int, int, int] = (3, 4, 14, 3)  # IR-SE blocks per stage (IR-SE-50)
    radius: float | None = None  # bound on each w of the offset; None: set from G; 0: none


def norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups (batch-size independent, identical in train and eval mode)."""
    return nn.GroupNorm(math.gcd(32, ch), ch)


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, reduction: int = 16):
        super().__init__()
        hidden = max(ch // reduction, 4)
        self.fc1 = nn.Conv2d(ch, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class IRSEBlock(nn.Module):
    """Improved residual block with squeeze-excitation: BN-conv-PReLU-conv(stride)-BN-SE + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.res = nn.Sequential(
            norm(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            norm(cout),
            SqueezeExcite(cout),
        )
        if cin == cout:
            self.short = nn.MaxPool2d(1, stride)
        else:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(x) + self.short(x)


class MapToStyle(nn.Module):
    """[B, C, s, s] -> [B, w_dim]: log2(s) stride-2 convs with LeakyReLU, then a Linear."""

    def __init__(self, cin: int, w_dim: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(cin if i == 0 else w_dim, w_dim, 3, 2, 1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(w_dim, w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


class SoundInversionEncoder(nn.Module):
    """E_a: mel [B, 1, n_mels, L] in [0, 1] -> W+ offset [B, num_ws, w_dim]."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.in_size % 16 or cfg.in_size < 32:
            raise ValueError(f"in_size must be a multiple of 16 and >= 32, got {cfg.in_size}")
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1), nn.PReLU(w))  # keeps loudness
        chans = [w, 2 * w, 4 * w, 8 * w]
        stages, cin = [], w
        for cout, n in zip(chans, cfg.depth, strict=True):
            blocks = [
                IRSEBlock(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        # FPN: c3 (8w, in/16) -> p3; p2 = up(p3) + lat(c2) (in/8); p1 = up(p2) + lat(c1) (in/4)
        d = cfg.w_dim
        self.lat3 = nn.Conv2d(chans[3], d, 1) if chans[3] != d else nn.Identity()
        self.lat2 = nn.Conv2d(chans[2], d, 1)
        self.lat1 = nn.Conv2d(chans[1], d, 1)
        s = cfg.in_size
        self.groups = style_groups(cfg.num_ws)
        spatial = [s // 16, s // 8, s // 4]  # coarse, mid, fine
        self.heads = nn.ModuleList(
            MapToStyle(d, d, spatial[g]) for g, grp in enumerate(self.groups) for _ in grp
        )

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled features of `encode`: 8 * width."""
        return 8 * self.cfg.width

    def body(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The taps c1 [B, 2w, s/4, s/4], c2 [B, 4w, s/8, s/8], c3 [B, 8w, s/16, s/16]."""
        s = self.cfg.in_size
        x = F.interpolate(mel, size=(s, s), mode="bilinear", align_corners=False) * 2 - 1
        x = self.stem(x)  # [B, w, s, s]
        x = self.stages[0](x)  # [B, w, s/2, s/2]
        c1 = self.stages[1](x)
        c2 = self.stages[2](c1)
        return c1, c2, self.stages[3](c2)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, 1, n_mels, L] -> W+ offset [B, num_ws, w_dim] (each w bounded by `radius`)."""
        return self.encode(mel)[0]

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, 1, n_mels, L] -> (W+ offset [B, num_ws, w_dim], globally averaged last-stage
        features [B, 8 * width]), from one pass of the body."""
        c1, c2, c3 = self.body(mel)
        p3 = self.lat3(c3)  # [B, d, s/16, s/16]
        p2 = F.interpolate(p3, size=c2.shape[-2:], mode="bilinear", align_corners=False)
        p2 = p2 + self.lat2(c2)  # [B, d, s/8, s/8]
        p1 = F.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=False)
        p1 = p1 + self.lat1(c1)  # [B, d, s/4, s/4]
        maps = [p3, p2, p1]
        styles = []
        h = 0
        for g, grp in enumerate(self.groups):
            for _ in grp:
                styles.append(self.heads[h](maps[g]))
                h += 1
        offset = bound(torch.stack(styles, dim=1), self.cfg.radius)  # [B, num_ws, d]
        return offset, c3.mean(dim=(2, 3))


def invert(encoder: nn.Module, mel: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 1: w_hat = E_a(mel) + w; `w` [B, num_ws, w_dim] (or [B, w_dim], broadcast to all ws)."""
    delta = encoder(mel)
    return delta + (w.unsqueeze(1) if w.dim() == 2 else w)
