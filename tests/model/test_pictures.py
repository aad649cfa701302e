"""Pictures of small outputs: enlarged nearest-neighbour to at least 256 px, labelled panels."""

from __future__ import annotations

import numpy as np
import pytest

from model.pictures import GAP, LABEL_HEIGHT, MIN_SIDE, enlarge, panel_grid, read_panel


def test_a_16_px_image_becomes_256_px_of_sharp_squares() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    big = enlarge(small)
    assert big.shape == (256, 256, 3)
    blocks = big.reshape(16, 16, 16, 16, 3)  # every 16x16 block is one pixel of the original
    assert (blocks == small[:, None, :, None, :]).all()
    assert enlarge(np.zeros((300, 400, 3), np.uint8)).shape == (300, 400, 3)  # already large
    assert enlarge(np.zeros((20, 40, 3), np.uint8)).shape == (260, 520, 3)  # whole factor 13


def test_panels_are_laid_out_each_under_its_label() -> None:
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((16, 16, 3), np.uint8)
    blue[..., 2] = 255
    grid = np.asarray(panel_grid([("photo", red), ("edited", blue), ("again", red)], columns=2))
    assert grid.shape == (2 * (LABEL_HEIGHT + MIN_SIDE + GAP) + GAP, 2 * (MIN_SIDE + GAP) + GAP, 3)
    y, x = GAP + LABEL_HEIGHT, GAP
    assert (grid[y : y + MIN_SIDE, x : x + MIN_SIDE] == red[0, 0]).all()
    x2 = GAP + MIN_SIDE + GAP
    assert (grid[y : y + MIN_SIDE, x2 : x2 + MIN_SIDE] == blue[0, 0]).all()
    label = grid[GAP : GAP + LABEL_HEIGHT, x : x + MIN_SIDE]
    assert (label < 128).any() and (label > 128).any()  # dark text on white, above the panel
    empty = grid[GAP + LABEL_HEIGHT + MIN_SIDE + GAP :, x2:]  # the fourth cell: nothing
    assert (empty == 255).all()
    with pytest.raises(ValueError):
        panel_grid([])


def test_a_panel_reads_back_at_its_own_size() -> None:
    rng = np.random.default_rng(1)
    panels = [(f"p{i}", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for i in range(5)]
    grid = np.asarray(panel_grid(panels, columns=3))
    for i, (_, image) in enumerate(panels):
        assert np.array_equal(read_panel(grid, i, 16, columns=3), image)
