"""Pictures that a person can inspect of a small generator's output: each panel enlarged with
nearest-neighbour by a whole factor (every generated pixel a sharp square, nothing blurred or
invented) to at least `MIN_SIDE` pixels, under its label, in a grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 256
"""The least size (pixels, the shorter side) of a panel once enlarged."""
GAP = 4
LABEL_HEIGHT = 22


def uint8_images(images) -> np.ndarray:
    """A torch tensor [N, 3, H, W] in [-1, 1] as uint8 pictures [N, H, W, 3]."""
    pixels = (images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return pixels.round().byte().permute(0, 2, 3, 1).numpy()


def enlarge(image: np.ndarray, at_least: int = MIN_SIDE) -> np.ndarray:
    """`image` ([H, W, 3] uint8) repeated `k` x `k` per pixel, `k` the least whole factor that makes
    the shorter side at least `at_least` (1 for an image that is already as large)."""
    k = max(1, math.ceil(at_least / min(image.shape[:2])))
    return image.repeat(k, axis=0).repeat(k, axis=1)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def panel_grid(
    panels: Sequence[tuple[str, np.ndarray]], columns: int | None = None, at_least: int = MIN_SIDE
) -> Image.Image:
    """The labelled `panels` ((label, [H, W, 3] uint8) each, enlarged by `enlarge`) in rows of
    `columns` (default: all in one row), on white, each label above its panel."""
    if not panels:
        raise ValueError("no panel to draw")
    big = [(label, enlarge(image, at_least)) for label, image in panels]
    columns = columns or len(big)
    rows = math.ceil(len(big) / columns)
    h = max(image.shape[0] for _, image in big)
    w = max(image.shape[1] for _, image in big)
    cell_h = LABEL_HEIGHT + h
    canvas = Image.new("RGB", (columns * (w + GAP) + GAP, rows * (cell_h + GAP) + GAP), "white")
    draw, font = ImageDraw.Draw(canvas), _font(14)
    for i, (label, image) in enumerate(big):
        x = GAP + (i % columns) * (w + GAP)
        y = GAP + (i // columns) * (cell_h + GAP)
        draw.text((x + 2, y + 3), label, fill="black", font=font)
        canvas.paste(Image.fromarray(image), (x, y + LABEL_HEIGHT))
    return canvas


def read_panel(grid: np.ndarray, index: int, size: int, columns: int | None = None) -> np.ndarray:
    """Panel `index` of a `panel_grid` picture (as an array) of `size` x `size` pictures, back at
    its own size: the inverse of the enlargement (every k-th pixel). `columns`: as drawn (default:
    one row)."""
    k = max(1, math.ceil(MIN_SIDE / size))
    side = size * k
    columns = columns or (grid.shape[1] - GAP) // (side + GAP)
    x = GAP + (index % columns) * (side + GAP)
    y = GAP + (index // columns) * (LABEL_HEIGHT + side + GAP) + LABEL_HEIGHT
    return grid[y : y + side : k, x : x + side : k]


def save_panels(
    path: str | Path, panels: Sequence[tuple[str, np.ndarray]], columns: int | None = None
) -> Path:
    """`panel_grid(panels, columns)` written to `path` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panel_grid(panels, columns).save(path)
    return path
