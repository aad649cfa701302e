"""The assembled generator side of the video model: sound -> W+ trajectory -> frames.

    z ~ N(0, I) --G.mapping(psi)--> w [B, N, D]                      (random start latent, eq. 1)
    mel_full [B, 1, M, L] --E_a--> delta; w_hat = w + delta          (sound inversion, eq. 1)
    mel segments x^s [B, S, 1, M, s] --E_a--> E_a(x^s) [B, S, N, D]
                                    --E_a body, pooled, Linear, LayerNorm--> encoded sound a [B, S, A]
    (w_hat, E_a(x), a, noise) --walker--> w^1, w^2, ...  (step t reads segment t - 1, eq. 4-5)
    frame t = w^{frame_step(t)} --frozen G.synthesis--> frames [B, T, 3, R, R] in ~[-1, 1]

Which segment drives which frame is one rule, `frame_step` (`VideoModelConfig.segments`), and
training, `model.generate` and `model.evaluate` all see frames through `SoundToLatents.forward`:

    previous (the paper, eq. 4): frame t, shown at t D / T, is the walk after t steps: it has heard
        segments 0..t-1, the sound before it; frame 0 is w_hat itself.
    current (issue 11's code):   frame t is the walk after t + 1 steps: it has heard segment t too,
        the sound [t D / T, (t + 1) D / T) that starts at it.

`fps` is the model's rate: walk steps (frames) per second of sound, the same in training (T = fps x
clip seconds) and in `model.generate`. The paper's default is 10 frames per 10 s clip (1.0). E_a
always reads a whole clip of `clip_seconds` (a longer sound is walked in windows of that length,
each re-anchoring the walk at its own w_hat: `forward` with several windows).

`SoundToLatents` holds the trainable parts (E_a and the walker) and is what DDP wraps and the
checkpoints store; the frozen StyleGAN3 generator stays outside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from model.config import apply_overrides, check_ranges
from model.encoder import EncoderConfig, SoundInversionEncoder, invert
from model.walker import LatentWalker, WalkerConfig, smooth_walk

SEGMENT_RULES = ("previous", "current")
"""Which walk step a frame shows (`frame_step`): after the segment before it (the paper) or after
the segment that starts at it."""


def frame_step(t: int, rule: str = "previous") -> int:
    """The walk step that frame t (shown at t D / T) shows; step s has read segments 0..s-1 and step
    0 is w_hat. The one place where segments meet frames (see the module docstring)."""
    if rule not in SEGMENT_RULES:
        raise ValueError(
            f"unknown segment rule {rule!r}; expected one of: {', '.join(SEGMENT_RULES)}"
        )
    return t + (rule == "current")


@dataclass
class VideoModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    walker: WalkerConfig = field(default_factory=WalkerConfig)
    truncation: float = 0.7  # psi of the random start latent w
    fps: float | None = None  # walk steps per second of sound; None: from the run's frames (1.0)
    clip_seconds: float = 10.0  # length of the training clips: E_a's whole-clip input
    segments: str = "previous"  # which step a frame shows: one of SEGMENT_RULES
    smooth: float | None = None  # walk smoothing momentum in training and inference (None: off)
    sound: bool = True  # ablation "no-sound" when False: E_a and the walker hear silence

    @property
    def clip_steps(self) -> int:
        """Segments (and frames) of one training clip."""
        return max(1, round((self.fps or 1.0) * self.clip_seconds))

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
    "encoder.radius": (0, 1e6),
    "clip_seconds": (0.1, 3600),
    "smooth": (1e-6, 1),
}
"""(lowest, highest) of each numeric field a checkpoint may set (the paper's model: 16 ws of 512,
in_size 256, width 64, GRUs of 512); num_ws and w_dim span those of the generators
`model.stylegan3` loads."""
MAX_PARAMETERS = 500_000_000
"""Most parameters of E_a + walker a checkpoint may describe (the paper's model has about 270M)."""


class Walk(NamedTuple):
    """A walk of one sound: `latents` [B, 1 + steps, N, D] (w^0 = w_hat, then w^s, which read
    segment s - 1) and `frames` [B, T, N, D], the latents shown at the frame times (`frame_step`)."""

    latents: torch.Tensor
    frames: torch.Tensor


class SoundToLatents(nn.Module):
    """E_a + walker: (whole-clip mels, segment mels, start latent w) -> `Walk`."""

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        if (cfg.encoder.num_ws, cfg.encoder.w_dim) != (cfg.walker.num_ws, cfg.walker.w_dim):
            raise ValueError("encoder and walker disagree on num_ws / w_dim")
        frame_step(0, cfg.segments)  # a known rule
        self.cfg = cfg
        self.encoder = SoundInversionEncoder(cfg.encoder)
        # LayerNorm: the sound code enters the walker at the unit scale of its noise
        self.sound = nn.Sequential(
            nn.Linear(self.encoder.feature_dim, cfg.walker.audio_dim),
            nn.LayerNorm(cfg.walker.audio_dim),
        )
        self.walker = LatentWalker(cfg.walker)

    def invert(self, mel_full: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Eq. 1: whole-clip mels [B, 1, M, L] and start latent w [B, N, D] -> w_hat [B, N, D]."""
        if not self.cfg.sound:
            mel_full = torch.zeros_like(mel_full)
        return invert(self.encoder, mel_full, w)

    def encode_segments(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment mels [B, S, 1, M, s] -> (E_a(x^s) [B, S, N, D], encoded sound a [B, S, A])."""
        if not self.cfg.sound:
            mel = torch.zeros_like(mel)
        B, S = mel.shape[:2]
        offsets, pooled = self.encoder.encode(mel.flatten(0, 1))
        return offsets.view(B, S, *offsets.shape[1:]), self.sound(pooled).view(B, S, -1)

    def forward(
        self,
        mel_full: torch.Tensor,
        mel: torch.Tensor,
        w: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> Walk:
        """mel_full [B, 1, M, L] (one clip) or [B, K, 1, M, L] (K windows of `clip_seconds`, segment s
        belonging to window s // clip_steps), mel [B, T, 1, M, s] (the T segments), w [B, N, D],
        noise [B, T, noise_dim] (that of the step reading segment s at s) -> the walk, T frames."""
        B, T = mel.shape[:2]
        windows = mel_full if mel_full.dim() == 5 else mel_full[:, None]
        K = windows.shape[1]
        w_hats = self.invert(windows.flatten(0, 1), w.repeat_interleave(K, dim=0))
        w_hats = w_hats.view(B, K, *w_hats.shape[1:])  # [B, K, N, D]
        n_steps = frame_step(T - 1, self.cfg.segments)  # the last frame's step
        latents = w_hats[:, :1]  # [B, 1 + n_steps, N, D] below
        if n_steps:
            sound, codes = self.encode_segments(mel[:, :n_steps])
            window = torch.arange(n_steps, device=mel.device) // self.cfg.clip_steps
            if noise is None:
                noise = torch.randn(B, T, self.cfg.walker.noise_dim, device=mel.device)
            steps = self.walker(
                latents[:, 0],
                w_hats[:, window.clamp(max=K - 1)],
                codes,
                sound if self.cfg.walker.kind == "eq4" else None,
                noise[:, :n_steps],
            )
            latents = torch.cat([latents, steps], dim=1)
        if self.cfg.smooth is not None:
            latents = smooth_walk(latents, self.cfg.smooth)
        shown = [frame_step(t, self.cfg.segments) for t in range(T)]
        return Walk(latents, latents[:, shown])


@torch.no_grad()
def sound_noise_ratio(
    model: SoundToLatents,
    G: nn.Module,
    mel_full: torch.Tensor,
    mel: torch.Tensor,
    other: torch.Tensor,
    w: torch.Tensor,
    generator: torch.Generator | None = None,
) -> float:
    """How much more one step's sound moves the frames than redrawing that step's noise does.

    For every segment s of `mel` [B, T, 1, M, S]: the mean absolute change of the rendered frames
    when segment s is swapped for segment s of `other` (another sound), and when only the noise of
    the step that reads segment s is redrawn; returns the ratio of the two changes summed over s.
    About 0 for a model that ignores the per-step sound."""
    B, T = mel.shape[:2]
    noise = torch.randn(B, T, model.cfg.walker.noise_dim, generator=generator).to(mel.device)

    def frames(segments: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return render(G, model(mel_full, segments, w, n).frames)

    base = frames(mel, noise)
    by_sound, by_noise = 0.0, 0.0
    for s in range(T):
        swapped, redrawn = mel.clone(), noise.clone()
        swapped[:, s] = other[:, s]
        redrawn[:, s] = torch.randn(B, noise.shape[-1], generator=generator).to(mel.device)
        by_sound += (frames(swapped, noise) - base).abs().mean().item()
        by_noise += (frames(mel, redrawn) - base).abs().mean().item()
    return by_sound / max(by_noise, 1e-12)


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
