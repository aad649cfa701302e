"""The walk is driven by the per-step sound: a tiny model trained on made-up clips whose picture pulses
at the sound's onsets must make frames that move with the onsets, and react to one step's sound more
than to that step's noise.

The made-up clips are rendered by the frozen tiny generator itself: a clip's frame t is
G(w_hat + on_t * v), with on_t = 1 where step t's sound has a noise burst and v a fixed W+ direction.
Because their true latents are known, the model (E_a + walker, real audio front end) trains by
regressing its walk offsets ws_t - w_hat onto on_t * v, a cheap stand-in for learning the same
correspondence through CLIP (which tiny random CLIP and F_a cannot teach in CPU time); the checks
render frames with the frozen generator.
"""

from __future__ import annotations

import pytest
import torch

from model.audio import MelConfig, clip_mels
from model.config import apply_overrides
from model.train import TINY_GENERATOR, TINY_PRESET, TrainConfig, resolve_config
from model.video_model import SoundToLatents, render, sound_noise_ratio, start_latents

T = 6  # steps per clip
SECONDS = 3.0
RATE = MelConfig().sample_rate
MARGIN = 0.5
"""How much better the motion must follow the real onsets than a shuffled-sound control does
(difference of mean correlations, which lie in [-1, 1])."""


def made_up_sounds(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mel_full [n, 1, M, L], mel [n, T, 1, M, S], onsets [n, T] bool): faint noise with a loud
    burst in the first half of each onset step; step 0 is quiet and step 1 an onset."""
    on = torch.rand(n, T, generator=gen) < 0.5
    on[:, 0], on[:, 1] = False, True
    seg = int(SECONDS * RATE) // T
    fulls, mels = [], []
    for i in range(n):
        wave = torch.randn(seg * T, generator=gen) * 1e-3
        for t in torch.nonzero(on[i]).flatten().tolist():
            wave[t * seg : t * seg + seg // 2] += torch.randn(seg // 2, generator=gen) * 0.5
        full, mel = clip_mels(wave, MelConfig(n_mels=32), T)
        fulls.append(full)
        mels.append(mel)
    return torch.stack(fulls), torch.stack(mels), on


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over rows of the Pearson correlation of a [n, k] and b [n, k]."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-9)).mean().item()


@pytest.fixture(scope="module")
def trained():
    """(model in eval mode, frozen tiny G): 150 steps of batch 4 over 20 made-up batches."""
    from model.stylegan3 import Generator

    torch.manual_seed(0)
    G = Generator(**TINY_GENERATOR).eval().requires_grad_(False)
    cfg = TrainConfig()
    apply_overrides(cfg, TINY_PRESET, "tiny")
    cfg.frames, cfg.clip_seconds = T, SECONDS
    resolve_config(cfg, G)
    model = SoundToLatents(cfg.model)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(G.num_ws, G.w_dim, generator=gen)
    v *= 0.6 * cfg.model.walker.radius / v.norm(dim=-1, keepdim=True)  # inside the walk's bound
    batches = [made_up_sounds(gen, 4) for _ in range(20)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for step in range(150):
        full, mel, on = batches[step % len(batches)]
        w_hat, ws = model(full, mel, start_latents(G, 4, cfg.model.truncation, generator=gen))
        target = on[:, :, None, None].float() * v  # the clip's true walk offsets
        loss = (ws - w_hat[:, None].detach() - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 0.2 * target.pow(2).mean(), loss  # it learned the onsets
    return model.eval(), G


@pytest.mark.slow
def test_motion_follows_the_onsets_better_than_shuffled_sound(trained):
    model, G = trained
    full, mel, on = made_up_sounds(torch.Generator().manual_seed(99), 8)
    w = start_latents(G, 8, 0.7, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(
        8, T, model.cfg.walker.noise_dim, generator=torch.Generator().manual_seed(2)
    )

    def motion(segments: torch.Tensor) -> torch.Tensor:  # [8, T - 1] mean |frame t - frame t-1|
        with torch.no_grad():
            frames = render(G, model(full, segments, w, noise)[1])
        return (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=(2, 3, 4))

    changes = (on[:, 1:] != on[:, :-1]).float()  # the sound switches between burst and quiet
    shuffled = mel[:, torch.tensor([3, 0, 5, 1, 4, 2])]  # same sounds, onsets at other steps
    real, control = correlation(motion(mel), changes), correlation(motion(shuffled), changes)
    assert real > control + MARGIN, (real, control)


@pytest.mark.slow
def test_one_steps_sound_moves_the_frames_more_than_its_noise(trained):
    model, G = trained
    full, mel, _ = made_up_sounds(torch.Generator().manual_seed(7), 4)
    _, other, _ = made_up_sounds(torch.Generator().manual_seed(8), 4)
    w = start_latents(G, 4, 0.7, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(4, T, model.cfg.walker.noise_dim, generator=gen)
    t = 2
    swapped, redrawn = mel.clone(), noise.clone()
    swapped[:, t] = other[:, t]
    redrawn[:, t] = torch.randn(4, noise.shape[-1], generator=gen)
    with torch.no_grad():
        base = render(G, model(full, mel, w, noise)[1])
        by_sound = (render(G, model(full, swapped, w, noise)[1]) - base)[:, t:].abs().mean()
        by_noise = (render(G, model(full, mel, w, redrawn)[1]) - base)[:, t:].abs().mean()
        assert torch.equal(render(G, model(full, swapped, w, noise)[1])[:, :t], base[:, :t])
    assert by_sound > 3 * by_noise, (by_sound.item(), by_noise.item())
    ratio = sound_noise_ratio(model, full, mel, other, w, torch.Generator().manual_seed(5))
    assert ratio > 3, ratio
