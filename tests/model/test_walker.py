"""Recurrent latent walker (eq. 4-5): shapes, style-group blocks, previous latent and sound as
inputs, causality, the walk's bound, smoothing, gradients."""

from __future__ import annotations

import torch

from model.walker import LatentWalker, WalkerConfig, bound, smooth_walk

TINY = WalkerConfig(num_ws=16, w_dim=32, hidden=24, audio_dim=16, noise_dim=16, radius=0.0)


def _inputs(B=2, T=5):
    return torch.randn(B, 16, 32), torch.randn(B, T, 16)


def test_shapes_and_three_group_blocks():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, audio = _inputs()
    ws = walker(w_hat, audio)
    assert ws.shape == (2, 5, 16, 32)
    assert [b.n_ws for b in walker.blocks] == [3, 3, 10]
    assert all(b.cell.hidden_size == 24 for b in walker.blocks)
    # each block reads its previous ws and the sound; sound and noise reach its last FC layer
    assert walker.blocks[2].cell.input_size == 10 * 32 + 16
    assert walker.blocks[2].step.in_features == 24 + 16 + 16
    single = LatentWalker(WalkerConfig(num_ws=16, w_dim=32, hidden=24, audio_dim=16, noise_dim=16,
                                       single_block=True))  # fmt: skip
    assert [b.n_ws for b in single.blocks] == [16] and single(w_hat, audio).shape == ws.shape


def test_each_block_moves_only_its_own_ws():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, audio = _inputs()
    noise = torch.randn(2, 5, 16)
    base = walker(w_hat, audio, noise)
    with torch.no_grad():
        walker.blocks[1].step.bias.add_(1.0)  # the mid block takes bigger steps
    moved = walker(w_hat, audio, noise)
    diff = (moved - base).abs().amax(dim=(0, 1, 3))  # per w
    assert (diff[3:6] > 0.5).all()
    assert diff[:3].max() == 0 and diff[6:].max() == 0


def test_the_previous_latent_feeds_the_next_step():
    """Eq. 4: step t reads w_{t-1}, so the start latent changes the steps, not only the origin."""
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, audio = _inputs()
    noise = torch.randn(2, 5, 16)
    steps = lambda w: walker(w, audio, noise) - w[:, None]  # noqa: E731
    assert not torch.allclose(steps(w_hat), steps(w_hat + 1.0))


def test_noise_and_sound_drive_the_walk_causally():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, audio = _inputs()
    n1, n2 = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    a = walker(w_hat, audio, n1)
    torch.testing.assert_close(a, walker(w_hat, audio, n1))  # deterministic for given noise
    assert not torch.allclose(a, walker(w_hat, audio, n2))
    later = audio.clone()
    later[:, 3] = torch.randn(2, 16)
    b = walker(w_hat, later, n1)
    torch.testing.assert_close(a[:, :3], b[:, :3])  # earlier steps do not hear step 3
    assert not torch.allclose(a[:, 3], b[:, 3]) and not torch.allclose(a[:, 4], b[:, 4])


def test_the_bound_keeps_long_walks_near_the_start():
    torch.manual_seed(0)
    cfg = WalkerConfig(num_ws=16, w_dim=32, hidden=24, audio_dim=16, noise_dim=16, radius=2.0)
    walker = LatentWalker(cfg)
    with torch.no_grad():
        for blk in walker.blocks:
            blk.step.bias.fill_(1.0)  # every step pushes the same way: unbounded, it would run off
    w_hat, audio = _inputs(T=200)
    ws = walker(w_hat, audio)
    dist = (ws - w_hat[:, None]).norm(dim=-1)
    assert dist.max() < 2.0 and dist[:, -1].min() > 1.5
    cfg.radius = 0.0
    assert (walker(w_hat, audio) - w_hat[:, None]).norm(dim=-1).max() > 100
    small = torch.full((3, 4), 1e-3)
    torch.testing.assert_close(bound(small, 2.0), small)  # identity near the start


def test_smoothing_is_the_exponential_average():
    ws = torch.zeros(1, 3, 2, 2)
    ws[:, 1] = 1.0
    ws[:, 2] = 2.0
    out = smooth_walk(ws, 0.4)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.4, 0.4 * 2 + 0.6 * 0.4]))


def test_gradients_reach_every_walker_parameter():
    torch.manual_seed(0)
    walker = LatentWalker(TINY)
    w_hat, audio = _inputs()
    w_hat.requires_grad_(True)
    audio.requires_grad_(True)
    walker(w_hat, audio).pow(2).mean().backward()
    assert w_hat.grad is not None and audio.grad is not None
    for name, p in walker.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
