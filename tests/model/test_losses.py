"""Loss terms on hand-made inputs with values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from model import losses


def test_clip_terms_are_one_minus_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    # cos = 1/sqrt(2) for the first pair, -1 for the second
    expected = ((1 - 1 / math.sqrt(2)) + 2.0) / 2
    assert losses.clip_audio_loss(a, b).item() == pytest.approx(expected)
    assert losses.clip_text_loss(a, b).item() == pytest.approx(expected)
    assert losses.clip_audio_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)


def test_temporal_term_is_squared_distance_to_the_time_mean():
    ws = torch.zeros(1, 2, 1, 2)
    ws[0, 0, 0] = torch.tensor([1.0, 0.0])
    ws[0, 1, 0] = torch.tensor([3.0, 2.0])
    # mean [2, 1]; each frame is at squared distance 1 + 1 = 2
    assert losses.temporal_loss(ws).item() == pytest.approx(2.0)
    assert losses.temporal_loss(torch.ones(2, 4, 3, 5)).item() == 0.0


def test_latent_term_is_mse_to_the_start():
    ws = torch.full((1, 2, 3, 4), 2.0)
    assert losses.latent_loss(ws, torch.zeros(1, 3, 4)).item() == pytest.approx(4.0)


def test_lsgan_terms():
    real, fake = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert losses.d_loss(real, fake).item() == 0.0  # a perfect discriminator
    assert losses.g_loss(fake).item() == 1.0  # the generator is caught everywhere
    half = torch.full((2, 1, 3, 3), 0.5)
    assert losses.d_loss(half, half).item() == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)
    # multiscale: a list sums its scales
    assert losses.d_loss([real, half], [fake, half]).item() == pytest.approx(0.25)
    assert losses.g_loss([fake, half]).item() == pytest.approx(1.25)


def test_default_weights():
    w = losses.LossWeights()
    assert w.clip_audio == 1.0 and w.clip_text == 0.001
    assert w.adv_image == 1.0 and w.adv_video == 1.0
