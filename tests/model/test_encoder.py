"""Sound inversion encoder E_a: shapes, style groups, eq. 1, the bound on its offsets, gradients."""

from __future__ import annotations

import pytest
import torch

from model.encoder import EncoderConfig, SoundInversionEncoder, invert
from model.styles import style_groups

TINY = EncoderConfig(num_ws=16, w_dim=32, in_size=64, width=8, depth=(1, 1, 1, 1))


def test_style_groups_follow_the_paper_at_16_ws():
    assert style_groups(16) == [range(0, 3), range(3, 6), range(6, 16)]
    for n in (3, 8, 14, 18):
        groups = style_groups(n)
        assert [i for g in groups for i in g] == list(range(n))
        assert all(len(g) >= 1 for g in groups)
    with pytest.raises(ValueError, match="at least 3"):
        style_groups(2)


def test_wplus_shape_from_any_mel_size():
    torch.manual_seed(0)
    enc = SoundInversionEncoder(TINY)
    for mels, frames in ((32, 100), (128, 862)):
        out = enc(torch.rand(2, 1, mels, frames))
        assert out.shape == (2, 16, 32)
        assert torch.isfinite(out).all()


def test_paper_size_taps_and_heads():
    """At the paper's size the FPN taps are [128,64,64], [256,32,32], [512,16,16] and the heads split
    3 coarse (16x16 map) / 3 mid (32x32) / 10 fine (64x64)."""
    # the paper's width and input size; a shallow body and narrow heads keep the test quick
    enc = SoundInversionEncoder(EncoderConfig(w_dim=64, depth=(1, 1, 1, 1)))
    shapes = []
    hooks = [
        enc.stages[i].register_forward_hook(lambda m, i, o: shapes.append(o.shape[1:]))
        for i in (1, 2, 3)
    ]
    with torch.no_grad():
        out = enc(torch.rand(1, 1, 128, 864))
    for h in hooks:
        h.remove()
    assert [tuple(s) for s in shapes] == [(128, 64, 64), (256, 32, 32), (512, 16, 16)]
    assert out.shape == (1, 16, 64)
    n_convs = [sum(isinstance(m, torch.nn.Conv2d) for m in head.convs) for head in enc.heads]
    assert n_convs == [4] * 3 + [5] * 3 + [6] * 10


def test_eq1_adds_the_random_latent_and_gradients_reach_the_encoder():
    torch.manual_seed(0)
    enc = SoundInversionEncoder(TINY)
    mel = torch.rand(2, 1, 32, 64)
    w = torch.randn(2, 16, 32)
    enc.eval()
    w_hat = invert(enc, mel, w)
    torch.testing.assert_close(w_hat - w, enc(mel))
    w_vec = torch.randn(2, 32)  # one w for every layer broadcasts
    torch.testing.assert_close(invert(enc, mel, w_vec) - w_vec[:, None], enc(mel))
    enc.train()
    invert(enc, mel, w).pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


def test_train_and_eval_mode_agree_at_batch_size_one():
    """No batch statistics: at the paper's batch size 1, training and generation see one E_a."""
    torch.manual_seed(0)
    enc = SoundInversionEncoder(TINY)
    mel = torch.rand(1, 1, 32, 64)
    with torch.no_grad():
        train_out, train_pooled = enc.train().encode(mel)
        eval_out, eval_pooled = enc.eval().encode(mel)
    assert (train_out - eval_out).abs().max() < 1e-5
    assert (train_pooled - eval_pooled).abs().max() < 1e-5
    assert eval_pooled.shape == (1, enc.feature_dim) == (1, 64)
    # and each example's output is its own, whatever else is in the batch
    with torch.no_grad():
        batched = enc(torch.cat([mel, torch.rand(3, 1, 32, 64)]))[:1]
    assert (batched - eval_out).abs().max() < 1e-5


def test_pooled_features_keep_the_sound_level():
    """A segment's loudness survives to the walker's code (onsets are changes of level)."""
    torch.manual_seed(0)
    enc = SoundInversionEncoder(TINY).eval()
    pattern = torch.rand(1, 1, 32, 64)
    with torch.no_grad():
        quiet, loud = enc.encode(0.2 * pattern)[1], enc.encode(0.2 * pattern + 0.6)[1]
    assert (loud - quiet).norm() > 0.1 * quiet.norm()


def test_the_offset_of_every_w_stays_within_the_radius():
    """E_a's offsets are bounded like the walk, so w_hat = w + E_a(x) stays in the generator's
    range however far training pushes the heads (issue 21: offsets of 10 per w saturated frames)."""
    torch.manual_seed(0)
    enc = SoundInversionEncoder(TINY)
    with torch.no_grad():
        for head in enc.heads:
            head.linear.bias.fill_(100.0)  # heads pushed far out
    mel = torch.rand(2, 1, 32, 64)
    free = enc(mel).norm(dim=-1)
    assert free.min() > 100
    enc.cfg.radius = 3.0
    bounded = enc(mel).norm(dim=-1)
    assert bounded.max() <= 3.0 + 1e-4 and bounded.min() > 2.9
