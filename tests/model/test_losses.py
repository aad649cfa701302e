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


def test_range_term_is_zero_inside_and_the_squared_overshoot_outside():
    images = torch.tensor([[-1.0, 0.3, 1.0, 1.5], [-3.0, 0.0, 0.9, -1.0]])
    # only 1.5 (0.5 over) and -3 (2 over) leave [-1, 1]: (0.25 + 4) / 8
    assert losses.range_loss(images).item() == pytest.approx(4.25 / 8)
    assert losses.range_loss(images.clamp(-1, 1)).item() == 0.0


def test_latent_term_is_mse_to_the_start():
    ws = torch.full((1, 2, 3, 4), 2.0)
    assert losses.latent_loss(ws, torch.zeros(1, 3, 4)).item() == pytest.approx(4.0)


def test_lsgan_terms():
    real, fake = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    ls = "least-squares"
    assert losses.d_loss(real, fake, ls).item() == 0.0  # a perfect discriminator
    assert losses.g_loss(fake, ls).item() == 1.0  # the generator is caught everywhere
    half = torch.full((2, 1, 3, 3), 0.5)
    assert losses.d_loss(half, half, ls).item() == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)
    # multiscale: a list sums its scales
    assert losses.d_loss([real, half], [fake, half], ls).item() == pytest.approx(0.25)
    assert losses.g_loss([fake, half], ls).item() == pytest.approx(1.25)


def test_log_gan_terms_of_eq_7_8():
    """D: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake))); G: -log sigmoid(D(fake))."""
    zero = torch.zeros(2, 1, 3, 3)
    assert losses.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.g_loss(zero).item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 30.0)
    assert losses.d_loss(big, -big).item() == pytest.approx(0.0, abs=1e-9)
    assert losses.g_loss([-big, zero]).item() == pytest.approx(30.0 + math.log(2))


def test_presets_name_their_source_and_explicit_values_win():
    paper = losses.LossWeights().resolved()
    assert (paper.preset, paper.clip_text, paper.latent, paper.gan) == ("paper", 1.0, 0.0, "log")
    assert paper.clip_audio == paper.adv_image == paper.adv_video == 1.0
    code = losses.LossWeights(preset="authors-code").resolved()
    assert (code.clip_text, code.latent, code.gan) == (0.001, 0.1, "least-squares")
    mixed = losses.LossWeights(preset="authors-code", clip_text=0.5).resolved()
    assert mixed.clip_text == 0.5 and mixed.gan == "least-squares"
    assert mixed.resolved() == mixed
    with pytest.raises(ValueError, match="unknown loss preset 'papr'; expected one of: paper"):
        losses.LossWeights(preset="papr").resolved()
    with pytest.raises(ValueError, match="unknown gan loss 'wgan'"):
        losses.LossWeights(gan="wgan").resolved()
