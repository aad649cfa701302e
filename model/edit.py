"""Sound-guided image editing: `python -m model.edit --checkpoint RUN_DIR --image photo.jpg --audio
thunder.wav --out edited.png`.

The photo becomes a W+ latent w (inverted as `model.invert` does, or read from a saved `.pt`); then,
each step acting only on the ws of `--levels` (the walker's coarse / mid / fine split,
`model.styles.style_groups`), the other ws staying bit-identical:

1. `--style-from photo2.jpg|SEED`: style mixing, those ws copied from the other photo's latent or
   from the mapping of seed SEED (at the run's truncation).
2. `--audio` (mixing, the default): w <- lerp(w, w_a, strength), with w_a = E_a(mel) + w the sound
   inverted by the run's encoder from w (eq. 1); `--strength 0` leaves the image as it was.
   With `--optimize` instead, as Lee et al. (CVPR 2022): minimise
   1 - cos(CLIP_image(G(w)), F_a(sound)) + anchor * ||w - w_start||^2 over `--steps`.
3. `--text "a thunderstorm at night"`: adds `text_weight * (1 - cos(CLIP_image(G(w)), CLIP_text))`
   to that objective (with mixing alone, it is optimised after the mix).

The output is a PNG strip: [the cropped photo,] G(w) before, G(w) after.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from model import config, runtime
from model.config import Flag, UsageError, command
from model.encoder import invert
from model.generate import ANCHOR, DEVICE, LEVELS, STYLE_FROM, TEXT, TEXT_WEIGHT
from model.invert import (
    PHOTO_FLAGS,
    WPLUS_SUFFIXES,
    PhotoOptions,
    Run,
    check_photo,
    load_image,
    open_checkpoint,
    photo_latent,
    to_png,
)
from model.losses import cosine_distance
from model.styles import ALL_LEVELS, GROUP_NAMES, style_groups
from model.video_model import start_latents


def parse_levels(text: str) -> tuple[str, ...]:
    """'coarse,fine' -> ('coarse', 'fine'); unknown names raise one line."""
    levels = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in levels if t not in GROUP_NAMES]
    if bad or not levels:
        raise UsageError(f"--levels {text!r}: use names from {', '.join(GROUP_NAMES)}")
    return levels


def level_mask(num_ws: int, levels: tuple[str, ...], device: torch.device) -> Tensor:
    """[1, num_ws, 1] bool: True on the ws of `levels`."""
    mask = torch.zeros(1, num_ws, 1, dtype=torch.bool, device=device)
    for name, layers in zip(GROUP_NAMES, style_groups(num_ws), strict=True):
        if name in levels:
            mask[:, layers.start : layers.stop] = True
    return mask


def mix(w: Tensor, source: Tensor, levels: tuple[str, ...], strength: float = 1.0) -> Tensor:
    """w with the ws of `levels` moved `strength` of the way to `source`; the rest untouched."""
    mask = level_mask(w.shape[1], levels, w.device)
    return torch.where(mask, torch.lerp(w, source, strength), w)


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


# ----------------------------------------------------------------------------------------------
# The edit chain, shared with model.generate


@dataclass
class EditOptions:
    """What `edit_latent` does to a latent (see the module docstring)."""

    levels: str = ALL_LEVELS
    audio: str | None = None
    strength: float = 1.0
    optimize: bool = False
    anchor: float = 0.008
    text: str | None = None
    text_weight: float = 1.0
    style_from: str | None = None
    clip: str | None = None  # CLIP / F_a weights other than the ones the run recorded
    sound_clip: str | None = None


def style_latent(run: Run, source: str, photo: PhotoOptions, rt: runtime.Runtime) -> Tensor:
    """W+ of `--style-from`: a picture or saved latent, or the mapping of an integer seed."""
    if Path(source).is_file():
        return photo_latent(run, source, photo, rt)[0]
    try:
        seed = int(source)
    except ValueError:
        raise UsageError(f"--style-from {source}: neither a file nor an integer seed") from None
    gen = torch.Generator().manual_seed(seed)
    return start_latents(run.G, 1, run.truncation, generator=gen)


def edit_latent(
    run: Run, w: Tensor, opts: EditOptions, photo: PhotoOptions, rt: runtime.Runtime
) -> tuple[Tensor, Guided | None]:
    """Style mixing, sound mixing and CLIP guidance of `w` [1, N, D] at `opts.levels`, in that
    order (each only when asked); returns the new latent and the guidance record."""
    levels = parse_levels(opts.levels)
    if opts.optimize and opts.audio is None:
        raise UsageError("--optimize needs --audio: it optimises toward that sound")
    if opts.style_from is not None:
        w = mix(w, style_latent(run, opts.style_from, photo, rt), levels)
    targets: dict[str, tuple[Tensor, float]] = {}
    if opts.audio is not None:
        mel = run.mel(opts.audio)
        if opts.optimize:
            with torch.no_grad():
                targets["sound"] = (run.sound_clip(opts.sound_clip)(mel).float(), 1.0)
        else:
            with torch.no_grad():
                w = mix(w, invert(run.encoder(), mel, w), levels, opts.strength)
    if opts.text is not None:
        targets["text"] = (run.clip(opts.clip).encode_text([opts.text]), opts.text_weight)
    if not targets:
        return w, None
    clip = run.clip(opts.clip)
    with runtime.progress(photo.steps, rt, photo.quiet, description="guide") as bar:
        g = guide(run.G, clip, w, targets, levels, photo.steps, photo.lr, opts.anchor, bar)
    return g.w, g


def start_latent(
    run: Run,
    w: Tensor,
    image: str | Path | None,
    opts: EditOptions,
    photo: PhotoOptions,
    rt: runtime.Runtime,
) -> Tensor:
    """model.generate's start latent: `image` (a photo, inverted, or a saved W+) in place of the
    random `w`, then style-mixed and text-guided by `opts` (the sound drives the walk, not this)."""
    if image is not None:
        w = photo_latent(run, image, photo, rt)[0]
    return edit_latent(run, w, opts, photo, rt)[0]


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


# ----------------------------------------------------------------------------------------------
# The command


@dataclass
class EditConfig:
    checkpoint: str = ""  # run folder of model.train
    image: str = ""  # the photo, or its saved W+ (.pt)
    out: str = ""  # before/after PNG strip
    edit: EditOptions = field(default_factory=EditOptions)
    photo: PhotoOptions = field(default_factory=PhotoOptions)
    device: str = "auto"


@dataclass
class Edited:
    path: Path
    before: Tensor  # G(w) of the photo's latent [1, 3, R, R]
    after: Tensor  # G(w) of the edited latent
    w_before: Tensor
    w_after: Tensor
    guided: Guided | None


def run_edit(cfg: EditConfig) -> Edited:
    """Edit `cfg.image` and write the before/after strip to `cfg.out`."""
    if cfg.edit.audio is None and cfg.edit.text is None and cfg.edit.style_from is None:
        raise UsageError("nothing to edit: give --audio, --text or --style-from")
    check_photo(cfg.photo)
    for flag, value in (("--anchor", cfg.edit.anchor), ("--text-weight", cfg.edit.text_weight)):
        if value < 0:
            raise UsageError(f"{flag} {value}: must be 0 or more")
    rt = runtime.setup(cfg.device)
    run = open_checkpoint(cfg.checkpoint, rt.device)
    w0, _ = photo_latent(run, cfg.image, cfg.photo, rt)
    w1, guided = edit_latent(run, w0, cfg.edit, cfg.photo, rt)
    with torch.no_grad():  # one at a time: a batch of two need not render each bit-identically
        before, after = run.G.synthesis(w0), run.G.synthesis(w1)
    panels = [before, after]
    if Path(cfg.image).suffix not in WPLUS_SUFFIXES:
        panels.insert(0, load_image(cfg.image, run.G.img_resolution)[0].to(rt.device))
    path = to_png(torch.cat(panels), cfg.out)
    what = ", ".join(
        f"{k} similarity {v[0]:.3f} -> {v[-1]:.3f}"
        for k, v in (guided.similarity.items() if guided else [])
    )
    print(
        f"{path}: {'photo | ' if len(panels) == 3 else ''}before | after at levels {cfg.edit.levels}"
        + (f"; {what}; drift {guided.drift:.3f}" if guided else "")
    )
    return Edited(path, before, after, w0, w1, guided)


EDIT_FLAGS = [
    Flag("audio", "The guiding sound.", exists=True),
    LEVELS,
    Flag("strength", "How far the sound-inverted latent is mixed in (0: unchanged)."),
    Flag("optimize", "Optimise toward the sound's CLIP embedding instead of mixing."),
    ANCHOR,
    TEXT,
    TEXT_WEIGHT,
    STYLE_FROM,
    Flag("clip", "CLIP weights (default: the run's).", exists=True),
    Flag("sound_clip", "Sound-CLIP F_a (default: the run's).", exists=True),
]
"""The flags of EditOptions (model.edit puts them `within("edit")`)."""


@command(
    "python -m model.edit",
    EditConfig,
    [
        Flag("checkpoint", "Run folder of model.train.", exists=True, required=True),
        Flag("image", "The photo, or its saved W+ (.pt).", exists=True, required=True),
        Flag("out", "Before/after PNG strip.", required=True),
        *(f.within("edit") for f in EDIT_FLAGS),
        *(f.within("photo") for f in PHOTO_FLAGS),
        DEVICE,
    ],
)
def cli(cfg: EditConfig) -> None:
    """Sound-guided editing of a photo: sound mixing or optimisation, CLIP text, style mixing."""
    run_edit(cfg)


def main(argv: list[str] | None = None) -> int:
    return config.run(cli, argv)  # `run` names a checkpoint's Run here


if __name__ == "__main__":
    sys.exit(main())
