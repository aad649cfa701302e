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
This module is the command; the edit chain it runs is `model.apps.edits` (shared with
`model.generate`), the photo's latent `model.apps.photos`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from model import config, runtime
from model.apps.checkpoint import open_checkpoint
from model.apps.edits import edit_latent
from model.apps.guidance import Guided
from model.apps.options import (
    EDIT_FLAGS,
    EditOptions,
    PhotoCommand,
    check_photo,
    photo_command_flags,
)
from model.apps.photos import WPLUS_SUFFIXES, load_image, photo_latent, to_png
from model.config import UsageError, command


@dataclass
class EditConfig(PhotoCommand):
    """--image: the photo or its saved W+ (.pt); --out: the before/after PNG strip."""

    edit: EditOptions = field(default_factory=EditOptions)


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


@command(
    "python -m model.edit",
    EditConfig,
    photo_command_flags(
        "The photo, or its saved W+ (.pt).",
        "Before/after PNG strip.",
        *(f.within("edit") for f in EDIT_FLAGS),
    ),
)
def cli(cfg: EditConfig) -> None:
    """Sound-guided editing of a photo: sound mixing or optimisation, CLIP text, style mixing."""
    run_edit(cfg)


def main(argv: list[str] | None = None) -> int:
    return config.run(cli, argv)  # `run` names a checkpoint's Run here


if __name__ == "__main__":
    sys.exit(main())
