"""CLIP guidance: latents moved at `--levels` toward CLIP-space targets (a text's embedding, or a
sound's through F_a) under an L2 anchor to where they started (`guide`); for a walk, through
keyframed offsets that follow the sound's motion (`guide_walk`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from model import runtime
from model.apps.checkpoint import Run
from model.apps.levels import level_mask, parse_levels
from model.apps.options import EditOptions, PhotoOptions
from model.losses import cosine_distance


@dataclass
class Guided:
    w: Tensor  # [B, N, D]
    similarity: dict[str, list[float]]  # per target: cosine before each step, then after the last
    drift: float  # ||w - w_start|| (the largest of a batch's)


def guide(
    G: nn.Module,
    clip: nn.Module,
    w_start: Tensor,
    targets: dict[str, tuple[Tensor, float]],
    levels: tuple[str, ...],
    steps: int,
    lr: float = 0.05,
    anchor: float = 0.008,
    bar: runtime.StepBar | None = None,
    basis: Tensor | None = None,
    chunk: int = 16,
) -> Guided:
    """Move the `levels` ws of `w_start` [B, N, D] toward CLIP-space `targets` ({name: (embedding
    [1, E], weight)}): minimise, summed over the B latents, weight * (1 - cos(CLIP(G(w)),
    embedding)) + anchor * ||w - w_start||^2 with Adam. Each latent moves by its own offset, or,
    with `basis` [B, K], by sum_k basis[b, k] * offset_k of K shared ones. The objective is
    evaluated `chunk` latents at a time; the record holds the batch's mean similarity and its
    largest drift."""
    mask = level_mask(w_start.shape[1], levels, w_start.device)
    batch = w_start.shape[0]
    basis = torch.eye(batch, device=w_start.device) if basis is None else basis.to(w_start.device)
    offsets = w_start.new_zeros(basis.shape[1], *w_start.shape[1:], requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=lr)
    sims: dict[str, list[float]] = {k: [] for k in targets}

    def objective(backward: bool) -> Tensor:
        """The guided latents; their gradients accumulated in `offsets` when `backward`."""
        out, total = [], dict.fromkeys(targets, 0.0)
        for rows in torch.arange(batch, device=w_start.device).split(chunk):
            w0 = w_start[rows]
            with torch.set_grad_enabled(backward):  # also under model.generate's no_grad
                w = torch.where(mask, w0 + torch.einsum("bk,k...->b...", basis[rows], offsets), w0)
                emb = clip.encode_image(G.synthesis(w)).float()
                loss = anchor * (w - w0).pow(2).sum()
                for name, (target, weight) in targets.items():
                    dist = cosine_distance(emb, target.expand_as(emb)) * len(rows)  # summed
                    total[name] += dist.item()
                    loss = loss + weight * dist
            if backward:
                loss.backward()
            out.append(w.detach())
        for name in targets:
            sims[name].append(1 - total[name] / batch)
        return torch.cat(out)

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        objective(backward=True)
        opt.step()
        if bar is not None:
            bar.advance(" ".join(f"{k} {v[-1]:.3f}" for k, v in sims.items()))
    w = objective(backward=False)
    return Guided(w, sims, (w - w_start).flatten(1).norm(dim=1).max().item())


def keyframe_basis(steps: int, every: float) -> Tensor:
    """[steps, K] weights that interpolate K keyframes, `every` steps apart (at least 1), linearly
    at each of `steps` positions: row t is the hat functions max(0, 1 - |t / every - k|)."""
    every = max(every, 1.0)
    t = torch.arange(steps, dtype=torch.float64) / every
    k = torch.arange(math.ceil(t[-1].item()) + 1, dtype=torch.float64)
    return (1 - (t[:, None] - k[None]).abs()).clamp(min=0).float()


def guide_walk(
    run: Run,
    ws: Tensor,
    opts: EditOptions,
    steps: int,
    every: float,
    photo: PhotoOptions,
    rt: runtime.Runtime,
    chunk: int = 16,
) -> Tensor:
    """model.generate's per-step text constraint: the walked latents ws [1, T, N, D] (at the run's
    rate) moved toward `opts.text` at `opts.levels` by `steps` guidance steps (`guide`, Adam at
    `photo.lr`), each anchored (`opts.anchor`) to its own latent. The offsets are keyframes `every`
    seconds of sound apart, linear between them, so the guidance follows the walk without jittering
    the sound's step-to-step motion (0: an offset per step)."""
    levels = parse_levels(opts.levels)
    clip = run.clip(opts.clip)
    targets = {"text": (clip.encode_text([opts.text]), opts.text_weight)}
    basis = keyframe_basis(ws.shape[1], every * run.latents.cfg.fps)
    with runtime.progress(steps, rt, photo.quiet, description="guide walk") as bar:
        g = guide(
            run.G, clip, ws[0], targets, levels, steps, photo.lr, opts.anchor, bar, basis, chunk
        )
    return g.w[None]
