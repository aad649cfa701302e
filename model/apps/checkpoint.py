"""A run of model.train as the applications use it: `Run` (the frozen generator, E_a + walker, the
training config, and the CLIP / F_a it trained with, loaded on first use). `load_run` is the one
place a checkpoint folder is read; `open_checkpoint` also takes a bare generator file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model import runtime
from model.audio import MelConfig, clip_mels, load_wave
from model.config import InputError
from model.video_model import SoundToLatents, VideoModelConfig, freeze


def checkpoint_folder(path: str | Path) -> Path:
    """A checkpoint folder itself, or the newest one of a run folder."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    latest = runtime.Checkpointer(path).latest()
    if latest is None:
        raise InputError(f"{path} is neither a checkpoint folder nor a run holding one")
    return latest


def load_run(path: str | Path, device: torch.device) -> tuple[SoundToLatents, nn.Module, dict]:
    """(E_a + walker, frozen generator, training config) of a checkpoint, in eval mode. A
    config or weights that cannot be loaded (out of bounds, unreadable) is an InputError."""
    from model.stylegan3 import Generator
    from model.train import read_run_config

    folder = checkpoint_folder(path)
    try:
        cfg = read_run_config(folder)
        latents = SoundToLatents(VideoModelConfig.from_dict(cfg["model"]))
        G = Generator(**cfg["generator_kwargs"])
        runtime.load_weights(folder, {"latents": latents, "generator": G})
    except ValueError as e:
        raise InputError(str(e)) from e
    return latents.to(device).eval(), freeze(G.to(device)), cfg


@dataclass
class Run:
    """The frozen generator of `--checkpoint`, its E_a + walker (None for a bare generator file)
    and its training config ({} for a bare generator), plus the CLIP / F_a it was trained with,
    loaded on first use."""

    source: Path
    G: nn.Module
    latents: SoundToLatents | None
    cfg: dict[str, Any]
    device: torch.device
    _guides: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def tiny(self) -> bool:
        return bool(self.cfg.get("tiny"))

    @property
    def truncation(self) -> float:
        return float(self.cfg.get("model", {}).get("truncation", 0.7))

    def encoder(self) -> nn.Module:
        """E_a of the run; a one-line error naming the checkpoint when it has none."""
        if self.latents is None:
            raise InputError(
                f"{self.source}: a bare generator without the sound-inversion encoder E_a; "
                "pass a run folder written by model.train"
            )
        return self.latents.encoder

    def mel(self, audio: str | Path) -> Tensor:
        """The whole sound's log-mel [1, 1, n_mels, L], as the run's E_a and F_a read it."""
        mel_cfg = MelConfig(n_mels=self.cfg.get("n_mels", 128))
        wave, _ = load_wave(audio, mel_cfg.sample_rate)
        return clip_mels(wave, mel_cfg, 1)[0][None].to(self.device)

    def clip(self, path: str | None = None) -> nn.Module:
        """The run's frozen CLIP (`path` overrides the recorded weights)."""
        from model.clip import load_clip

        arch = self.cfg.get("clip_arch", "ViT-B-32")
        return self._guide("clip", path, lambda p: load_clip(p, arch=arch))

    def sound_clip(self, path: str | None = None) -> nn.Module:
        """The run's frozen sound-CLIP encoder F_a (`path` overrides the recorded one)."""
        from model.sound_clip import load_sound_clip

        return self._guide("sound_clip", path, load_sound_clip)

    def _guide(self, key: str, path: str | None, load: Any) -> nn.Module:
        if key not in self._guides:
            if self.tiny and path is None:
                self._load_tiny_guides()
            else:
                path = path or self.cfg.get(key)
                if path is None:
                    flag = "--" + key.replace("_", "-")
                    raise InputError(f"{self.source}: no {key} weights recorded; pass {flag}")
                try:
                    self._guides[key] = load(path).to(self.device)
                except ValueError as e:  # weights out of bounds, damaged or of another kind
                    raise InputError(str(e)) from e
        return self._guides[key]

    def _load_tiny_guides(self) -> None:
        """The random tiny CLIP and F_a a `--tiny` run trained with (rebuilt from its seed)."""
        from model.train import TrainConfig, load_frozen

        with torch.random.fork_rng(devices=[]):  # load_frozen seeds the global generator
            frozen = load_frozen(TrainConfig(tiny=True, seed=self.cfg.get("seed", 0)), self.device)
        self._guides.setdefault("clip", frozen.clip)
        self._guides.setdefault("sound_clip", frozen.sound_clip)


def open_run(path: str | Path, device: torch.device) -> Run:
    """A run folder (its newest checkpoint) or one checkpoint folder of model.train."""
    latents, G, cfg = load_run(path, device)
    return Run(Path(path), G, latents, cfg, device)


def open_checkpoint(path: str | Path, device: torch.device) -> Run:
    """`open_run`, or a bare generator file (.pkl / .safetensors of model.stylegan3); a config
    without a field this code needs is one line naming the checkpoint."""
    path = Path(path)
    if path.is_file():
        from model.stylegan3 import load_generator

        try:
            return Run(path, load_generator(path, device), None, {}, device)
        except ValueError as e:  # a file out of bounds, damaged or of another kind
            raise InputError(str(e)) from e
    try:
        return open_run(path, device)
    except KeyError as e:
        raise InputError(f"{path}: {e.args[0]}") from None
