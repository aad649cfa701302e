"""Is the walk sound-guided? Measurements of a trained run on held-out clips.

- `step_ratio`: how much more one step's sound moves the following frames than redrawing that
  step's noise (`model.video_model.sound_noise_ratio`, every step of every clip, the sound swapped
  for another clip's); about 0 for a model deaf to the per-step sound, > 1 when the sound leads.
- `av_align_control`: AV-Align (`model.metrics.av_align`) of the videos the run generates from each
  clip's sound, scored against that sound and against another clip's (the shuffled-sound control).
  A run whose motion follows its sound scores clearly higher against its own.
- `sound_term`: eq. 2's sound term (`clip_audio`) of the run's frames on held-out clips, computed
  as training does, with the CLIP and F_a (or stand-ins) the run trained with.
- `in_range`: the share of pixels outside the generator's [-1, 1] in those videos.
- `logged`: a scalar of the run's TensorBoard log (`loss/clip_audio` over training).

Videos are generated as `model.generate` makes them (`walk_sound`, at the model's own rate, one
frame per walk step), clip i with seed `seed + i`. `bench/sound_guidance.py` reports these on the
toy world (`model.toy_world`); `tests/model/test_toy_world.py` checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.apps.video import render_frames, walk_sound
from model.audio import MelConfig, clip_mels, fit_length, load_wave
from model.data import expand_shards, shard_samples
from model.metrics.av_align import audio_onsets, av_align, flow_trajectory, resample_for_onsets
from model.video_model import SoundToLatents, render, sound_noise_ratio, start_latents

RATE = MelConfig().sample_rate


def held_out_waves(shards: str, limit: int) -> list[torch.Tensor]:
    """Mono 44.1 kHz waveforms [S] of the first `limit` clips of the shards (shard, tar order),
    each as long as its json's duration."""
    import json

    waves = []
    for url in expand_shards(shards):
        for sample in shard_samples(url):
            if len(waves) == limit:
                return waves
            wave, _ = load_wave(sample["flac"], RATE)
            waves.append(fit_length(wave, round(json.loads(sample["json"])["duration"] * RATE)))
    return waves


@torch.no_grad()
def videos(
    latents: SoundToLatents, G: torch.nn.Module, waves: list[torch.Tensor], n_mels: int, seed: int
) -> list[torch.Tensor]:
    """The run's frames [T, 3, R, R] (unclamped) for each sound, at the model's rate."""
    return [
        torch.cat(list(render_frames(G, walk_sound(latents, G, wave, n_mels, seed=seed + i))))
        for i, wave in enumerate(waves)
    ]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Frames [T, 3, R, R] around [-1, 1] -> uint8 [T, R, R, 3] (clamped, as a video file holds)."""
    out = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def av_align_control(
    clips: list[torch.Tensor], waves: list[torch.Tensor], fps: float
) -> tuple[float, float]:
    """Mean AV-Align of video i (frames [T, 3, R, R] at `fps`) against sound i, and against sound
    i + 1 (mod n; the shuffled control)."""
    n = len(clips)
    flows = [flow_trajectory(to_uint8(c)) for c in clips]
    onsets = [audio_onsets(resample_for_onsets(w.numpy(), RATE)) for w in waves]
    own = [av_align(flows[i], fps, onsets[i]) for i in range(n)]
    shuffled = [av_align(flows[i], fps, onsets[(i + 1) % n]) for i in range(n)]
    return float(np.mean(own)), float(np.mean(shuffled))


def in_range(clips: list[torch.Tensor]) -> float:
    """Share of the pixels of frames [T, 3, R, R] outside [-1, 1]."""
    return float(torch.cat([c.flatten() for c in clips]).abs().gt(1).float().mean())


@torch.no_grad()
def step_ratio(
    latents: SoundToLatents, G: torch.nn.Module, waves: list[torch.Tensor], n_mels: int, seed: int
) -> float:
    """`sound_noise_ratio` over clips of one training clip's length, each step's sound swapped for
    that of the next clip (mod n)."""
    full, mel = _clip_mels(latents, waves, n_mels)
    gen = torch.Generator().manual_seed(seed)
    w = start_latents(G, len(waves), latents.cfg.truncation, generator=gen)
    return sound_noise_ratio(latents, G, full, mel, mel.roll(1, dims=0), w, gen)


def run_encoders(config: dict, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The frozen CLIP and F_a (or their stand-ins) that a run's training config names."""
    from model.config import apply_overrides
    from model.train import TrainConfig, load_frozen

    cfg = TrainConfig()
    apply_overrides(cfg, {k: v for k, v in config.items() if k != "generator_kwargs"}, "run config")
    with torch.random.fork_rng(devices=[]):  # load_frozen seeds tiny models
        frozen = load_frozen(cfg, device)
    return frozen.clip, frozen.sound_clip


@torch.no_grad()
def sound_term(
    latents: SoundToLatents,
    G: torch.nn.Module,
    encoders: tuple[torch.nn.Module, torch.nn.Module],
    waves: list[torch.Tensor],
    n_mels: int,
    seed: int,
) -> float:
    """Eq. 2's sound term as training computes it (every step's image against F_a of the segment it
    read, G(w_hat) against the whole clip), on held-out clips of the training clip length."""
    from model.losses import clip_audio_loss
    from model.train import sound_targets

    clip, sound_clip = encoders
    full, mel = _clip_mels(latents, waves, n_mels)
    gen = torch.Generator().manual_seed(seed)
    w = start_latents(G, len(waves), latents.cfg.truncation, generator=gen)
    noise = torch.randn(len(waves), mel.shape[1], latents.cfg.walker.noise_dim, generator=gen)
    walk = latents(full, mel, w, noise)
    images = render(G, walk.latents)
    target = sound_targets(sound_clip, full, mel[:, : images.shape[1] - 1])
    return clip_audio_loss(clip.encode_image(images.flatten(0, 1)), target.flatten(0, 1)).item()


def _clip_mels(
    latents: SoundToLatents, waves: list[torch.Tensor], n_mels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-clip [n, 1, M, L] and segment [n, T, 1, M, s] mels of sounds cut to the training
    clip length, as the loader makes them."""
    clip_samples = round(latents.cfg.clip_seconds * RATE)
    mels = [
        clip_mels(fit_length(w, clip_samples), MelConfig(n_mels=n_mels), latents.cfg.clip_steps)
        for w in waves
    ]
    return torch.stack([m[0] for m in mels]), torch.stack([m[1] for m in mels])


def logged(run: str | Path, tag: str) -> np.ndarray:
    """The values of scalar `tag` in a run's TensorBoard log (`RUN/tb`), in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(Path(run) / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return np.array([e.value for e in sorted(events.Scalars(tag), key=lambda e: e.step)])


def by_part(values: np.ndarray, parts: int = 4) -> list[float]:
    """Means of `values` over `parts` consecutive equal parts (the trend of a noisy log)."""
    return [float(np.mean(p)) for p in np.array_split(values, parts)]


@dataclass
class Guidance:
    """The measurements of one checkpoint on held-out clips."""

    ratio: float  # step_ratio
    av_align: float  # videos against their own sound
    av_align_shuffled: float  # against another clip's sound
    sound_term: float  # eq. 2's sound term (clip_audio)
    saturated: float  # share of generated pixels outside [-1, 1]

    @property
    def margin(self) -> float:
        return self.av_align - self.av_align_shuffled


def measure(checkpoint: str | Path, waves: list[torch.Tensor], seed: int = 0) -> Guidance:
    """Every measurement of a checkpoint (or a run's newest) on the sounds `waves`."""
    from model.apps.checkpoint import load_run

    latents, G, config = load_run(checkpoint, torch.device("cpu"))
    n_mels = config["n_mels"]
    clips = videos(latents, G, waves, n_mels, seed)
    own, shuffled = av_align_control(clips, waves, latents.cfg.fps)
    term = sound_term(latents, G, run_encoders(config, torch.device("cpu")), waves, n_mels, seed)
    ratio = step_ratio(latents, G, waves, n_mels, seed)
    return Guidance(ratio, own, shuffled, term, in_range(clips))
