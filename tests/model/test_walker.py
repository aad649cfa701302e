"""Recurrent latent walker: shapes, residual walk, style groups, noise, smoothing, gradients."""

from __future__ import annotations

import torch

from model.walker import LatentWalker, WalkerConfig, smooth_walk

TINY = WalkerConfig(num_ws=16, w_dim=32, hidden=24, audio_dim=16, noise_dim=16, seg_width=4)


def _inputs(B=2, T=5):
    return torch.randn(B, 16, 32), torch.rand(B, T, 1, 32, 12)


def test_shapes_and_three_group_blocks():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, seg = _inputs()
    ws = walker(w_hat, seg)
    assert ws.shape == (2, 5, 16, 32)
    assert [b.n_ws for b in walker.blocks] == [3, 3, 10]
    assert all(b.gru.hidden_size == 24 for b in walker.blocks)
    assert WalkerConfig().hidden == 512 and WalkerConfig().noise_dim == 512


def test_each_block_moves_only_its_own_ws():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, seg = _inputs()
    noise = torch.randn(2, 5, 16)
    base = walker(w_hat, seg, noise)
    with torch.no_grad():
        walker.blocks[1].step.bias.add_(1.0)  # the mid block takes bigger steps
    moved = walker(w_hat, seg, noise)
    diff = (moved - base).abs().amax(dim=(0, 1, 3))  # per w
    assert (diff[3:6] > 0.5).all()
    assert diff[:3].max() == 0 and diff[6:].max() == 0
    # residual: step t adds to step t-1, so with only the bias changed the offset grows as t + 1
    offsets = (moved - base)[0, :, 4, 0]
    torch.testing.assert_close(offsets, torch.arange(1.0, 6.0))


def test_noise_and_audio_both_drive_the_walk():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, seg = _inputs()
    n1, n2 = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    a = walker(w_hat, seg, n1)
    torch.testing.assert_close(a, walker(w_hat, seg, n1))  # deterministic for given noise
    assert not torch.allclose(a, walker(w_hat, seg, n2))
    assert not torch.allclose(a, walker(w_hat, torch.rand_like(seg), n1))
    # causal: changing the last segment leaves earlier frames alone
    seg2 = seg.clone()
    seg2[:, -1] = torch.rand_like(seg2[:, -1])
    b = walker(w_hat, seg2, n1)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_smoothing_is_the_exponential_average():
    ws = torch.zeros(1, 3, 2, 2)
    ws[:, 1] = 1.0
    ws[:, 2] = 2.0
    out = smooth_walk(ws, 0.4)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.4, 0.4 * 2 + 0.6 * 0.4]))


def test_gradients_reach_every_walker_parameter():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, seg = _inputs()
    w_hat.requires_grad_(True)
    walker(w_hat, seg).pow(2).mean().backward()
    assert w_hat.grad is not None
    for name, p in walker.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
