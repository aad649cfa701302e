"""Loss terms of the video model (paper eq. 2, 3, 7-9) and their weights.

All embedding inputs are L2-normalised CLIP-space vectors [B, E]; latents are W+ sequences
[B, T, num_ws, w_dim]; discriminator outputs are patch-score tensors (or lists of them, one per
scale). Adversarial terms are least-squares GAN (the paper's code):
    D: 0.5 * E[(D(real) - 1)^2] + 0.5 * E[D(fake)^2]        G: E[(D(fake) - 1)^2]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    """Weights of the generator-side loss (the sum L_G) and of the discriminator-side loss.

    Sources: `clip_text` 0.001 and the latent regulariser toward a truncated start latent come from the
    paper's published code; the paper gives unit weight to the CLIP sound term (eq. 2) and the
    adversarial terms (eq. 7-9). `temporal` (lambda_b of eq. 3) and `latent` are not printed in the
    paper; 0.1 each is our choice (large enough to keep the walk near its mean, small enough to let
    the sound move it).
    """

    clip_audio: float = 1.0  # eq. 2: 1 - cos(CLIP_image(G(w_hat)), F_a(audio))
    clip_text: float = 0.001  # eq. 2's text twin: 1 - cos(CLIP_image(G(w_hat)), CLIP_text(prompt))
    temporal: float = 0.1  # eq. 3: lambda_b * ||w_t - mean_t w_t||^2
    latent: float = 0.1  # ||w_t - w_start||^2, w_start a truncation-0.7 latent (code's regulariser)
    adv_image: float = 1.0  # eq. 7-9, image discriminator D_I
    adv_video: float = 1.0  # eq. 7-9, video discriminator D_V


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


def latent_loss(ws: torch.Tensor, w_start: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of every walked latent to a start latent; ws [B,T,N,D], w_start [B,N,D]."""
    return (ws - w_start.unsqueeze(1)).pow(2).mean()


def _scores(x: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return x if isinstance(x, list | tuple) else [x]


def d_loss(real: torch.Tensor | list[torch.Tensor], fake: torch.Tensor | list[torch.Tensor]):
    """LSGAN discriminator loss, summed over scales: 0.5*(D(real)-1)^2 + 0.5*D(fake)^2."""
    return sum(
        0.5 * (r - 1).pow(2).mean() + 0.5 * f.pow(2).mean()
        for r, f in zip(_scores(real), _scores(fake), strict=True)
    )


def g_loss(fake: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss, summed over scales: (D(fake)-1)^2."""
    return sum((f - 1).pow(2).mean() for f in _scores(fake))
