"""Loss terms of the video model (paper eq. 2, 3, 7-9) and their weights, by named preset.

All embedding inputs are L2-normalised CLIP-space vectors [B, E]; latents are W+ sequences
[B, T, num_ws, w_dim]; discriminator outputs are patch-score tensors (or lists of them, one per
scale). Two adversarial losses (`GANS`):
    log (eq. 7-8):   D: softplus(-D(real)) + softplus(D(fake))   G: softplus(-D(fake))  (non-saturating)
    least-squares (the authors' code):  D: 0.5 (D(real) - 1)^2 + 0.5 D(fake)^2   G: (D(fake) - 1)^2
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GANS = ("log", "least-squares")

PRESETS: dict[str, dict[str, float | str]] = {
    # eq. 2, 3, 7-9 as written: unit weights, the log GAN loss, no latent regulariser
    "paper": dict(clip_text=1.0, latent=0.0, gan="log"),
    # the published code: text weight 0.001, LSGAN, MSE of the walk to a truncated start latent
    "authors-code": dict(clip_text=0.001, latent=0.1, gan="least-squares"),
}
"""Loss presets; `LossWeights` fields left at None take their preset's value."""


@dataclass
class LossWeights:
    """Weights of the generator-side loss L_G (and the adversarial loss of both sides).

    `preset` names where the defaults come from (`PRESETS`); a field set explicitly wins over it.
    Sources: clip_audio, adv_image, adv_video are 1 in the paper and the authors' code; temporal
    (lambda_b of eq. 3) is printed in neither, 0.1 is ours; range is ours (neither has it: within
    the bounds on the latents, the tiny demo run's adversarial terms still drove its frames far out
    of [-1, 1]; the term is 0 while frames stay inside).
    """

    preset: str = "paper"
    clip_audio: float = 1.0  # eq. 2: 1 - cos(CLIP_image(frame), F_a(its sound))
    clip_text: float | None = None  # eq. 2's text twin (prompt of the class)
    temporal: float = 0.1  # eq. 3: lambda_b * ||w_t - mean_t w_t||^2
    latent: float | None = None  # ||w_t - w_start||^2 (the authors' code's regulariser)
    range: float = 10.0  # pixels outside the generator's [-1, 1] (ours; 0: off)
    adv_image: float = 1.0  # eq. 7-9, image discriminator D_I
    adv_video: float = 1.0  # eq. 7-9, video discriminator D_V
    gan: str | None = None  # one of GANS

    def resolved(self) -> LossWeights:
        """A copy with every None field taken from the preset; ValueError for unknown names."""
        if self.preset not in PRESETS:
            raise ValueError(
                f"unknown loss preset {self.preset!r}; expected one of: {', '.join(PRESETS)}"
            )
        fill = {k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None}
        out = dataclasses.replace(self, **fill)
        if out.gan not in GANS:
            raise ValueError(f"unknown gan loss {out.gan!r}; expected one of: {', '.join(GANS)}")
        return out


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 - cos(a_i, b_i); a, b [B, E] (normalised here, so any scale works)."""
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()


def clip_audio_loss(image_emb: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
    """Eq. 2: 1 - cos(CLIP image embedding of the generated frame, sound-CLIP embedding of the audio)."""
    return cosine_distance(image_emb, audio_emb)


def clip_text_loss(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Text twin of eq. 2: 1 - cos(CLIP image embedding, CLIP text embedding of the class prompt)."""
    return cosine_distance(image_emb, text_emb)


def temporal_loss(ws: torch.Tensor) -> torch.Tensor:
    """Eq. 3 (without lambda_b): mean over batch and time of ||w_t - mean_t w_t||^2; ws [B, T, N, D]."""
    dev = ws - ws.mean(dim=1, keepdim=True)
    return dev.pow(2).sum(dim=(2, 3)).mean()


def range_loss(images: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of (|x| - 1)^2 where |x| > 1: how far frames leave the range [-1, 1]."""
    return (images.abs() - 1).clamp_min(0).pow(2).mean()


def latent_loss(ws: torch.Tensor, w_start: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of every walked latent to a start latent; ws [B,T,N,D], w_start [B,N,D]."""
    return (ws - w_start.unsqueeze(1)).pow(2).mean()


def _scores(x: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return x if isinstance(x, list | tuple) else [x]


def d_loss(
    real: torch.Tensor | list[torch.Tensor],
    fake: torch.Tensor | list[torch.Tensor],
    gan: str = "log",
) -> torch.Tensor:
    """Discriminator loss, summed over scales (`gan` one of GANS)."""
    pairs = zip(_scores(real), _scores(fake), strict=True)
    if gan == "log":
        return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in pairs)
    return sum(0.5 * (r - 1).pow(2).mean() + 0.5 * f.pow(2).mean() for r, f in pairs)


def g_loss(fake: torch.Tensor | list[torch.Tensor], gan: str = "log") -> torch.Tensor:
    """Generator loss, summed over scales (`gan` one of GANS)."""
    if gan == "log":
        return sum(F.softplus(-f).mean() for f in _scores(fake))
    return sum((f - 1).pow(2).mean() for f in _scores(fake))
