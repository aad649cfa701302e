"""The assembled generator side of the video model: sound -> W+ trajectory -> frames.

    z ~ N(0, I) --G.mapping(psi)--> w [B, N, D]                      (random start latent, eq. 1)
    mel_full [B, 1, M, L] --E_a--> delta; w_hat = w + delta          (sound inversion, eq. 1)
    mel segments [B, T, 1, M, S] --E_a body, pooled, Linear, LayerNorm--> audio codes a [B, T, A]
    (w_hat, a, noise) --walker--> ws [B, T, N, D]                     (eq. 4-5)
    ws --frozen G.synthesis--> frames [B, T, 3, R, R] in ~[-1, 1]

`fps` is the model's rate: walk steps (frames) per second of sound, the same in training (T = fps x
clip seconds) and in `model.generate`. The paper's default is 10 frames per 10 s clip (1.0).

`SoundToLatents` holds the trainable parts (E_a and the walker) and is what DDP wraps and the
checkpoints store; the frozen StyleGAN3 generator stays outside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from model.config import apply_overrides, check_ranges
from model.encoder import EncoderConfig, SoundInversionEncoder, invert
from model.walker import LatentWalker, WalkerConfig


@dataclass
class VideoModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    walker: WalkerConfig = field(default_factory=WalkerConfig)
    truncation: float = 0.7  # psi of the random start latent w
    fps: float | None = None  # walk steps per second of sound; None: from the run's frames (1.0)
    sound: bool = True  # ablation "no-sound" when False: E_a and the walker hear silence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "model") -> VideoModelConfig:
        """The config of `to_dict`'s mapping `d` (from a checkpoint's config.json, which anyone may
        have written): every field typed, within `RANGES`, and the model it describes at most
        `MAX_PARAMETERS`, checked before anything is allocated. ValueError naming the field."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: a {type(d).__name__}, not a mapping of settings")
        cfg = cls()
        apply_overrides(cfg, d, where)
        check_ranges(cfg, RANGES, where)
        with torch.device("meta"):  # shapes only: nothing is allocated
            size = sum(p.numel() for p in SoundToLatents(cfg).parameters())
        if size > MAX_PARAMETERS:
            raise ValueError(f"{where}: {size:,} parameters (more than {MAX_PARAMETERS:,})")
        return cfg


RANGES: dict[str, tuple[float, float]] = {
    "truncation": (-10, 10),
    "fps": (1e-3, 1e3),
    "encoder.num_ws": (1, 66),
    "encoder.w_dim": (1, 2048),
    "walker.num_ws": (1, 66),
    "walker.w_dim": (1, 2048),
    "encoder.in_size": (8, 512),
    "encoder.width": (1, 256),
    "encoder.depth": (1, 32),
    "walker.hidden": (1, 4096),
    "walker.audio_dim": (1, 4096),
    "walker.noise_dim": (1, 4096),
    "walker.radius": (0, 1e6),
}
"""(lowest, highest) of each numeric field a checkpoint may set (the paper's model: 16 ws of 512,
in_size 256, width 64, GRUs of 512); num_ws and w_dim span those of the generators
`model.stylegan3` loads."""
MAX_PARAMETERS = 500_000_000
"""Most parameters of E_a + walker a checkpoint may describe (the paper's model has about 270M)."""


class SoundToLatents(nn.Module):
    """E_a + walker: (mel_full, mel segments, start latent w) -> (w_hat [B,N,D], ws [B,T,N,D])."""

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        if (cfg.encoder.num_ws, cfg.encoder.w_dim) != (cfg.walker.num_ws, cfg.walker.w_dim):
            raise ValueError("encoder and walker disagree on num_ws / w_dim")
        self.cfg = cfg
        self.encoder = SoundInversionEncoder(cfg.encoder)
        # LayerNorm: the sound code enters the walker at the unit scale of its noise
        self.sound = nn.Sequential(
            nn.Linear(self.encoder.feature_dim, cfg.walker.audio_dim),
            nn.LayerNorm(cfg.walker.audio_dim),
        )
        self.walker = LatentWalker(cfg.walker)

    def segment_codes(self, mel: torch.Tensor) -> torch.Tensor:
        """Per-step audio codes a_t: mel segments [B, T, 1, M, S] -> [B, T, audio_dim]."""
        B, T = mel.shape[:2]
        return self.sound(self.encoder.pooled(mel.flatten(0, 1))).view(B, T, -1)

    def forward(
        self,
        mel_full: torch.Tensor,
        mel: torch.Tensor,
        w: torch.Tensor,
        noise: torch.Tensor | None = None,
        smooth: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cfg.sound:
            mel_full, mel = torch.zeros_like(mel_full), torch.zeros_like(mel)
        w_hat = invert(self.encoder, mel_full, w)  # [B, N, D]
        return w_hat, self.walker(w_hat, self.segment_codes(mel), noise, smooth)  # [B, T, N, D]


@torch.no_grad()
def sound_noise_ratio(
    model: SoundToLatents,
    mel_full: torch.Tensor,
    mel: torch.Tensor,
    other: torch.Tensor,
    w: torch.Tensor,
    generator: torch.Generator | None = None,
) -> float:
    """How much more one step's sound moves that step's latent than redrawing its noise does.

    For every step t: the move of ws_t when segment t of `mel` [B, T, 1, M, S] is swapped for segment t
    of `other` (another sound), and when noise n_t alone is redrawn; returns the ratio of the two
    mean moves (L2 over the W+). About 0 for a model that ignores the per-step sound."""
    B, T = mel.shape[:2]
    noise = torch.randn(B, T, model.cfg.walker.noise_dim, generator=generator).to(mel.device)
    _, base = model(mel_full, mel, w, noise)
    by_sound, by_noise = [], []
    for t in range(T):
        swapped = mel.clone()
        swapped[:, t] = other[:, t]
        redrawn = noise.clone()
        redrawn[:, t] = torch.randn(B, noise.shape[-1], generator=generator).to(mel.device)
        by_sound.append((model(mel_full, swapped, w, noise)[1][:, t] - base[:, t]).norm())
        by_noise.append((model(mel_full, mel, w, redrawn)[1][:, t] - base[:, t]).norm())
    return (torch.stack(by_sound).mean() / torch.stack(by_noise).mean().clamp_min(1e-12)).item()


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


@torch.no_grad()
def latent_spread(G: nn.Module, samples: int = 1000) -> float:
    """Mean distance of G's untruncated w to w_avg (fixed seed): the scale of its latent space."""
    z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(0))
    w = G.mapping(z.to(G.mapping.w_avg.device), None, truncation_psi=1.0)[:, 0]
    return (w - G.mapping.w_avg).norm(dim=-1).mean().item()


def render(G: nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """Frozen G in fp32 on a latent sequence: ws [B, T, N, D] -> frames [B, T, 3, R, R].

    Gradients flow to `ws` (not to G's frozen weights)."""
    B, T = ws.shape[:2]
    with torch.autocast(ws.device.type, enabled=False):
        img = G.synthesis(ws.flatten(0, 1).float())
    return img.view(B, T, *img.shape[1:])
