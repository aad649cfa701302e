"""`SoundToLatents`: the one segment rule, windows that re-anchor the walk, smoothing as trained,
the sound/noise measure."""

from __future__ import annotations

import pytest
import torch

from model.config import apply_overrides
from model.train import TINY_PRESET, TrainConfig
from model.video_model import (
    SEGMENT_RULES,
    SoundToLatents,
    VideoModelConfig,
    frame_step,
    sound_noise_ratio,
)


def _model(**model) -> SoundToLatents:
    cfg = TrainConfig()
    apply_overrides(cfg, TINY_PRESET, "tiny")
    apply_overrides(cfg.model, {"fps": 1.0, "clip_seconds": 4.0} | model, "test")
    for sub in (cfg.model.encoder, cfg.model.walker):
        sub.num_ws, sub.w_dim, sub.radius = 8, 32, 3.0
    torch.manual_seed(0)
    return SoundToLatents(cfg.model).eval()


def _inputs(B=2, T=4, K=1):
    gen = torch.Generator().manual_seed(1)
    full = torch.rand(B, K, 1, 32, 60, generator=gen) if K > 1 else torch.rand(B, 1, 32, 60)
    return full, torch.rand(B, T, 1, 32, 12, generator=gen), torch.randn(B, 8, 32, generator=gen)


def test_frame_step_is_the_papers_rule_by_default():
    assert [frame_step(t) for t in range(3)] == [0, 1, 2]
    assert [frame_step(t, "current") for t in range(3)] == [1, 2, 3]
    assert VideoModelConfig().segments == "previous" and SEGMENT_RULES == ("previous", "current")
    with pytest.raises(ValueError, match="unknown segment rule 'next'"):
        frame_step(0, "next")


@pytest.mark.parametrize("rule", SEGMENT_RULES)
def test_frame_t_hears_the_segments_the_rule_gives(rule):
    """Swapping segment s changes exactly the frames whose step read it: under `previous`, frames
    after s (frame 0 is w_hat); under `current`, frame s and after."""
    model = _model(segments=rule)
    full, mel, w = _inputs()
    noise = torch.randn(2, 4, model.cfg.walker.noise_dim)
    with torch.no_grad():
        walk = model(full, mel, w, noise)
        assert walk.frames.shape == (2, 4, 8, 32)
        assert walk.latents.shape == (2, 1 + frame_step(3, rule), 8, 32)
        torch.testing.assert_close(walk.latents[:, 0], model.invert(full, w))
        for s in range(4):
            other = mel.clone()
            other[:, s] = torch.rand_like(mel[:, s])
            moved = (model(full, other, w, noise).frames - walk.frames).abs().amax(dim=(0, 2, 3))
            heard = [frame_step(t, rule) > s for t in range(4)]
            assert [bool(m > 0) for m in moved] == heard, (s, moved)


def test_each_window_re_anchors_the_walk_at_its_own_w_hat():
    """A sound of K windows: the steps that read window k's segments stay within the walk's bound
    of that window's w_hat (E_a of that window), whatever the windows before."""
    model = _model()
    with torch.no_grad():
        for blk in model.walker.blocks:
            blk.step.bias.fill_(5.0)  # every step runs to the bound
        full, mel, w = _inputs(T=12, K=3)  # clip_steps 4: segments 0-3, 4-7, 8-11
        walk = model(full, mel, w)
        anchors = model.invert(full.flatten(0, 1), w.repeat_interleave(3, 0)).view(2, 3, 8, 32)
    steps = walk.latents[:, 1:]  # step s + 1 read segment s
    for s in range(steps.shape[1]):
        dist = (steps[:, s] - anchors[:, s // 4]).norm(dim=-1)
        assert dist.max() <= model.cfg.walker.radius + 1e-4, s
    assert (anchors[:, 1] - anchors[:, 0]).norm(dim=-1).min() > 0  # the windows differ


def test_smoothing_applies_in_training_and_generation_alike():
    plain, smooth = _model(), _model(smooth=0.4)
    full, mel, w = _inputs()
    noise = torch.randn(2, 4, plain.cfg.walker.noise_dim)
    with torch.no_grad():
        a, b = plain(full, mel, w, noise), smooth(full, mel, w, noise)
    torch.testing.assert_close(b.latents[:, 1], 0.4 * a.latents[:, 1] + 0.6 * a.latents[:, 0])


def test_a_deaf_model_has_no_sound_to_noise_ratio():
    from model.stylegan3 import Generator
    from model.toy_world import TOY_GENERATOR

    torch.manual_seed(0)
    G = Generator(**TOY_GENERATOR).eval()  # 8 ws (uncalibrated: any generator will do)
    full, mel, _ = _inputs(T=4)
    other = torch.rand_like(mel)
    w = torch.randn(2, G.num_ws, G.w_dim)
    model = _model(sound=False)
    assert sound_noise_ratio(model, G, full, mel, other, w, torch.Generator().manual_seed(0)) == 0
    model = _model()
    assert sound_noise_ratio(model, G, full, mel, other, w, torch.Generator().manual_seed(0)) > 0
