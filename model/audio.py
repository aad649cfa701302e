"""Audio front end: any sound -> mono waveform at the mel rate -> log-mel spectrograms in [0, 1].

The spectrogram follows the paper's code: 44.1 kHz mono, n_fft 2048, hop 512, Hann window, centred,
power mel (128 bins), dB relative to the maximum floored at -80 dB, then dB/80 + 1, so silence is 0
and the loudest bin is 1. `clip_mels` gives the whole-clip mel and the T per-step mels (step t holds
the frames centred in [t*D/T, (t+1)*D/T)) sharing one dB reference, so loudness changes across
steps survive; `clip_windows` cuts a sound of any length into such clips. Pure functions of a
waveform: the data workers and generation from an arbitrary audio file use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import torch
import torchaudio
from torch import Tensor, nn

from landscape_av.corpus.decode import decode_pcm
from model.config import InputError

TOP_DB = 80.0
"""Dynamic range kept below the reference (dB); also the divisor of the [0, 1] scaling."""
SILENT_POWER = 1e-8
"""Mel power below which a whole spectrogram counts as silence (a -100 dBFS sine gives ~3e-5)."""


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128

    def frames(self, num_samples: int) -> int:
        """Mel frames of a centred STFT over num_samples samples."""
        return 1 + num_samples // self.hop


def load_wave(source: str | Path | bytes, sample_rate: int | None = None) -> tuple[Tensor, int]:
    """Decode any audio (file path or encoded bytes, any container/codec PyAV reads) to mono float32.

    Returns (waveform [S], rate): channels are averaged; with `sample_rate` the waveform is resampled
    to it. Raises InputError naming the file when it holds no audio PyAV can decode.
    """
    try:
        pcm, rate = decode_pcm(source)  # [C, S]
    except (av.error.FFmpegError, ValueError) as e:
        name = "<bytes>" if isinstance(source, bytes) else str(source)
        reason = str(e).removeprefix(f"{name}: ")
        raise InputError(f"{name}: not readable audio ({reason})") from None
    wave = torch.from_numpy(pcm.mean(axis=0))
    if sample_rate is not None and sample_rate != rate:
        wave = torchaudio.functional.resample(wave, rate, sample_rate)
        rate = sample_rate
    return wave, rate


def fit_length(wave: Tensor, num_samples: int) -> Tensor:
    """Crop or zero-pad the last dim of a waveform to exactly num_samples."""
    if wave.shape[-1] >= num_samples:
        return wave[..., :num_samples]
    return nn.functional.pad(wave, (0, num_samples - wave.shape[-1]))


def mel_power(wave: Tensor, cfg: MelConfig) -> Tensor:
    """Power mel spectrogram: [..., S] -> [..., n_mels, 1 + S // hop]."""
    transform = _mel_transform(cfg, wave.device)
    if wave.shape[-1] <= cfg.n_fft // 2:  # reflect padding needs more samples than half a window
        wave = fit_length(wave, cfg.n_fft // 2 + 1)
    return transform(wave.float())


_TRANSFORMS: dict[tuple[MelConfig, str], torchaudio.transforms.MelSpectrogram] = {}


def _mel_transform(cfg: MelConfig, device: torch.device) -> torchaudio.transforms.MelSpectrogram:
    key = (cfg, str(device))
    if key not in _TRANSFORMS:
        _TRANSFORMS[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop,
            n_mels=cfg.n_mels,
            window_fn=torch.hann_window,
            center=True,
            power=2.0,
        ).to(device)
    return _TRANSFORMS[key]


def power_to_unit(power: Tensor, ref: Tensor) -> Tensor:
    """dB of power relative to ref, floored at -80 dB, mapped by dB/80 + 1 and clipped to [0, 1].

    A reference at or below `SILENT_POWER` (digital silence) gives all zeros rather than
    scaling the silence up to full level.
    """
    db = 10.0 * torch.log10(power.clamp_min(1e-20) / ref.clamp_min(SILENT_POWER))
    return (db / TOP_DB + 1.0).clamp(0.0, 1.0) * (ref > SILENT_POWER)


def log_mel(wave: Tensor, cfg: MelConfig) -> Tensor:
    """Log-mel in [0, 1] of each waveform: [..., S] -> [..., n_mels, 1 + S // hop].

    The reference of each spectrogram is its own maximum (librosa's `power_to_db(ref=np.max)`).
    """
    power = mel_power(wave, cfg)
    return power_to_unit(power, power.amax(dim=(-2, -1), keepdim=True))


def clip_mels(wave: Tensor, cfg: MelConfig, steps: int) -> tuple[Tensor, Tensor]:
    """Whole-clip and per-step log-mels of one mono waveform [S], from one STFT.

    Returns mel_full [1, n_mels, 1 + S // hop] and mel [steps, 1, n_mels, (S // steps) // hop]
    (`step_mels` of mel_full). Both are scaled against the whole clip's maximum power, so quieter
    steps stay quieter.
    """
    if wave.dim() != 1:
        raise ValueError(f"clip_mels wants a mono waveform [S], got shape {tuple(wave.shape)}")
    power = mel_power(wave, cfg)  # [n_mels, L]; frame i is centred on sample i * hop
    mel_full = power_to_unit(power, power.amax())[None]
    return mel_full, step_mels(mel_full, wave.shape[0], cfg.hop, steps)


def clip_windows(wave: Tensor, cfg: MelConfig, clip_samples: int, steps: int, windows: int = 0):
    """A sound of any length as the clips a model trained on: consecutive windows of `clip_samples`
    (at least `windows` of them; the last zero-padded, as is a shorter sound), each turned into its
    whole-clip and `steps` per-step mels by `clip_mels` (its own dB reference, as a training clip).

    Returns mel_full [K, 1, n_mels, 1 + clip_samples // hop] and mel [K * steps, 1, n_mels, S]
    (window k's steps at k * steps ...)."""
    k = max(windows, math.ceil(wave.shape[-1] / clip_samples), 1)
    fulls, mels = zip(
        *(
            clip_mels(fit_length(wave[i * clip_samples :], clip_samples), cfg, steps)
            for i in range(k)
        ),
        strict=True,
    )
    return torch.stack(fulls), torch.cat(mels)


def step_mels(mel_full: Tensor, num_samples: int, hop: int, steps: int) -> Tensor:
    """The T per-step windows of a whole-clip mel [1, n_mels, L] of `num_samples` samples.

    Returns [steps, 1, n_mels, (num_samples // steps) // hop]: step t holds the first frames
    centred in [t*S/steps, (t+1)*S/steps).
    """
    width = num_samples // steps // hop
    if width == 0:
        raise ValueError(f"{num_samples} samples are too few for {steps} steps of mel frames")
    starts = [math.ceil(t * num_samples / steps / hop) for t in range(steps)]
    return torch.stack([mel_full[:, :, s : s + width] for s in starts])


class SpecAugment(nn.Module):
    """SpecAugment for [B, 1, n_mels, L] log-mels in [0, 1]: masked bins become 0 (silence).

    Each example gets its own `freq_masks` frequency masks of up to `freq_width` bins and `time_masks`
    time masks of up to `time_width` frames. Identity in eval mode.
    """

    def __init__(
        self, freq_width: int = 16, time_width: int = 64, freq_masks: int = 2, time_masks: int = 2
    ):
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time_width, iid_masks=True)
        self.freq_masks, self.time_masks = freq_masks, time_masks

    def forward(self, mel: Tensor) -> Tensor:
        if not self.training:
            return mel
        for _ in range(self.freq_masks):
            mel = self.freq(mel, mask_value=0.0)
        for _ in range(self.time_masks):
            mel = self.time(mel, mask_value=0.0)
        return mel
