"""Recurrent latent walker (eq. 4-5): shapes, style-group blocks, what each kind reads, causality,
the bound around the anchor, smoothing, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.styles import bound
from model.walker import KINDS, LatentWalker, WalkerConfig, smooth_walk

TINY = WalkerConfig(num_ws=16, w_dim=32, hidden=24, audio_dim=16, noise_dim=16, radius=0.0)


def _walker(kind: str = "eq4", **kw) -> LatentWalker:
    torch.manual_seed(0)
    return LatentWalker(dataclasses.replace(TINY, kind=kind, **kw))


def _inputs(B=2, S=5):
    """w_hat [B, 16, 32], anchors [B, S, 16, 32], codes [B, S, 16], sound E_a(x) [B, S, 16, 32]."""
    w_hat = torch.randn(B, 16, 32)
    return (
        w_hat,
        w_hat[:, None].expand(B, S, 16, 32),
        torch.randn(B, S, 16),
        torch.randn(B, S, 16, 32),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_three_group_blocks(kind):
    walker = _walker(kind)
    w_hat, anchors, codes, sound = _inputs()
    ws = walker(w_hat, anchors, codes, sound)
    assert ws.shape == (2, 5, 16, 32)
    assert [b.n_ws for b in walker.blocks] == [3, 3, 10]
    assert all(b.cell.hidden_size == 24 for b in walker.blocks)
    # eq4 reads E_a(x) + w (a W+ code) in the GRU, pooled reads [w ; a]; both put the encoded
    # sound and the noise into the last FC layer (sec. 4.1)
    assert walker.blocks[2].cell.input_size == 10 * 32 + (16 if kind == "pooled" else 0)
    assert walker.blocks[2].step.in_features == 24 + 16 + 16
    single = _walker(kind, single_block=True)
    assert [b.n_ws for b in single.blocks] == [16]
    assert single(w_hat, anchors, codes, sound).shape == ws.shape


def test_eq4_reads_the_sum_of_the_segments_latent_and_the_previous_latent():
    """Eq. 4: the recurrent block's input is E_a(x^{t-1}) + w^{t-1}: moving a unit of a w from the
    sound's code to the previous latent changes nothing that the GRU sees."""
    walker = _walker("eq4")
    w_hat, anchors, codes, sound = _inputs(S=1)
    noise = torch.randn(2, 1, 16)
    shift = torch.randn(2, 16, 32)
    a = walker(w_hat, anchors, codes, sound, noise) - w_hat[:, None]
    b = walker(w_hat + shift, anchors + shift[:, None], codes, sound - shift[:, None], noise)
    torch.testing.assert_close(a, b - (w_hat + shift)[:, None], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="eq4 walker reads E_a"):
        walker(w_hat, anchors, codes)


@pytest.mark.parametrize("kind", KINDS)
def test_each_block_moves_only_its_own_ws(kind):
    walker = _walker(kind)
    w_hat, anchors, codes, sound = _inputs()
    noise = torch.randn(2, 5, 16)
    base = walker(w_hat, anchors, codes, sound, noise)
    with torch.no_grad():
        walker.blocks[1].step.bias.add_(1.0)  # the mid block takes bigger steps
    moved = walker(w_hat, anchors, codes, sound, noise)
    diff = (moved - base).abs().amax(dim=(0, 1, 3))  # per w
    assert (diff[3:6] > 0.5).all()
    assert diff[:3].max() == 0 and diff[6:].max() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_previous_latent_feeds_the_next_step(kind):
    """Eq. 4: step t reads w^{t-1}, so the start latent changes the steps, not only the origin."""
    walker = _walker(kind)
    w_hat, _, codes, sound = _inputs()
    noise = torch.randn(2, 5, 16)

    def steps(w):
        return walker(w, w[:, None].expand(-1, 5, -1, -1), codes, sound, noise) - w[:, None]

    assert not torch.allclose(steps(w_hat), steps(w_hat + 1.0))


@pytest.mark.parametrize("kind", KINDS)
def test_noise_and_sound_drive_the_walk_causally(kind):
    walker = _walker(kind)
    w_hat, anchors, codes, sound = _inputs()
    n1, n2 = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    a = walker(w_hat, anchors, codes, sound, n1)
    torch.testing.assert_close(a, walker(w_hat, anchors, codes, sound, n1))  # deterministic
    assert not torch.allclose(a, walker(w_hat, anchors, codes, sound, n2))
    for later_codes, later_sound in ((True, False), (False, True)):
        c, s = codes.clone(), sound.clone()
        if later_codes:
            c[:, 3] = torch.randn(2, 16)
        if later_sound:
            s[:, 3] = torch.randn(2, 16, 32)
        b = walker(w_hat, anchors, c, s, n1)
        torch.testing.assert_close(a[:, :3], b[:, :3])  # earlier steps do not hear segment 3
        changed = not torch.allclose(a[:, 3], b[:, 3]) and not torch.allclose(a[:, 4], b[:, 4])
        # the pooled walker does not read E_a's W+ code of a segment, only its encoded sound
        assert changed == (later_codes or kind == "eq4")


def test_the_bound_keeps_long_walks_near_the_anchor():
    walker = _walker("eq4", radius=2.0)
    with torch.no_grad():
        for blk in walker.blocks:
            blk.step.bias.fill_(1.0)  # every step pushes the same way: unbounded, it would run off
    w_hat, anchors, codes, sound = _inputs(S=200)
    ws = walker(w_hat, anchors, codes, sound)
    dist = (ws - w_hat[:, None]).norm(dim=-1)
    assert dist.max() < 2.0 and dist[:, -1].min() > 1.5
    # a new anchor half-way (a long sound's next window): the walk stays near that one
    moved = anchors.clone()
    moved[:, 100:] += 10.0
    ws = walker(w_hat, moved, codes, sound)
    assert (ws[:, 100:] - moved[:, 100:]).norm(dim=-1).max() < 2.0 + 1e-4
    walker.cfg.radius = 0.0
    assert (walker(w_hat, anchors, codes, sound) - w_hat[:, None]).norm(dim=-1).max() > 100
    small = torch.full((3, 4), 1e-3)
    torch.testing.assert_close(bound(small, 2.0), small)  # identity near the start


def test_smoothing_is_the_exponential_average():
    ws = torch.zeros(1, 3, 2, 2)
    ws[:, 1] = 1.0
    ws[:, 2] = 2.0
    out = smooth_walk(ws, 0.4)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.4, 0.4 * 2 + 0.6 * 0.4]))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_walker_parameter(kind):
    walker = _walker(kind)
    w_hat, anchors, codes, sound = _inputs()
    for x in (w_hat, codes, sound):
        x.requires_grad_(True)
    walker(w_hat, anchors, codes, sound).pow(2).mean().backward()
    assert w_hat.grad is not None and codes.grad is not None
    assert (sound.grad is not None) == (kind == "eq4")
    for name, p in walker.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
