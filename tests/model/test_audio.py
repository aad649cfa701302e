"""The log-mel front end: decoding any audio, down-mix, resampling, scaling, step alignment."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from landscape_av.ffmpeg import run_ffmpeg
from model.audio import (
    MelConfig,
    SpecAugment,
    clip_mels,
    clip_windows,
    fit_length,
    load_wave,
    log_mel,
)
from model.config import InputError

CFG = MelConfig()


def _synth(path: Path, expr: str, seconds: float, rate: int = 44100) -> Path:
    """Encode an ffmpeg aevalsrc expression (channels separated by '|') to a real audio file."""
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={expr}:s={rate}:d={seconds}", str(path)])
    return path


def test_real_files_of_any_rate_and_layout_decode_to_mono_44k(shared_media: Path) -> None:
    for name, seconds in [
        ("rain__redeclipse-sounds__morph-rain.ogg", 9.445),  # 48 kHz mono Vorbis
        ("thunderstorm__blanket__storm.ogg", 25.664),  # 44.1 kHz stereo Vorbis
    ]:
        wave, rate = load_wave(shared_media / name, CFG.sample_rate)
        assert rate == CFG.sample_rate and wave.dim() == 1 and wave.dtype == torch.float32
        assert abs(wave.shape[0] / rate - seconds) < 0.05, name
        assert 0.05 < wave.abs().max() <= 1.1, name
        mel = log_mel(wave, CFG)
        assert mel.shape == (CFG.n_mels, 1 + wave.shape[0] // CFG.hop)
        assert mel.min() >= 0 and mel.max() == 1.0


def test_stereo_is_averaged_and_rates_are_converted(tmp_path: Path) -> None:
    # left = sine, right = minus the same sine: the down-mix cancels to silence
    path = _synth(tmp_path / "anti.flac", "sin(2*PI*440*t)|-sin(2*PI*440*t)", 1.0, rate=48000)
    wave, rate = load_wave(path.read_bytes(), 44100)
    assert rate == 44100 and abs(wave.shape[0] - 44100) <= 1
    assert wave.abs().max() < 1e-3
    left, _ = load_wave(_synth(tmp_path / "left.flac", "0.5*sin(2*PI*440*t)", 1.0), None)
    assert 0.45 < left.abs().max() < 0.55  # int16 FLAC scaled back to [-1, 1]


def test_no_audio_stream_is_a_clear_error(shared_media: Path) -> None:
    with pytest.raises(
        InputError, match="cockatoo_yuv420.mp4: not readable audio .no audio stream"
    ):
        load_wave(shared_media / "video_odd__imageio-binaries__cockatoo_yuv420.mp4")


def test_a_tone_lands_in_its_mel_bin_and_scales_to_one() -> None:
    t = torch.arange(CFG.sample_rate) / CFG.sample_rate
    mel = log_mel(0.3 * torch.sin(2 * torch.pi * 1000.0 * t), CFG)  # [128, 87]
    peak = mel.mean(dim=1).argmax().item()
    # HTK mel scale (torchaudio's default): bin centres are evenly spaced in mel from 0 to Nyquist
    mel_of = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    expected = (CFG.n_mels + 1) * mel_of(1000) / mel_of(CFG.sample_rate / 2) - 1
    assert abs(peak - expected) <= 1
    assert mel.max() == 1.0 and mel[:, 5:-5].min() >= 0.0
    assert mel[peak + 30].mean() < 0.5  # far bins are tens of dB down
    silence = log_mel(torch.zeros(44100), CFG)
    assert silence.max() == 0.0  # nothing above a silent reference... and no NaN
    assert not torch.isnan(silence).any()


def test_step_mels_follow_the_sound_over_time() -> None:
    steps, seconds = 5, 5.0
    n = int(seconds * CFG.sample_rate)
    t = torch.arange(n) / CFG.sample_rate
    loud_step = 3  # a tone only during [3 s, 4 s)
    wave = torch.where((t >= 3.0) & (t < 4.0), torch.sin(2 * torch.pi * 500.0 * t), 0.0)
    full, mel = clip_mels(wave, CFG, steps)
    assert full.shape == (1, CFG.n_mels, 1 + n // CFG.hop)
    assert mel.shape == (steps, 1, CFG.n_mels, (n // steps) // CFG.hop)
    # share of each step's frames where some bin is within 40 dB of the clip's peak
    active = (mel.amax(dim=(1, 2)) > 0.5).float().mean(dim=-1)
    assert active[loud_step] == 1.0  # the tone fills its step...
    assert active[[0, 1]].tolist() == [0.0, 0.0]  # ...not the silence before...
    assert active[2] < 0.05 and active[4] < 0.05  # ...and neighbours see at most a window's edge
    # steps share the clip's reference: a quieter copy of the tone scales down, not back to 1
    _, quiet = clip_mels(torch.cat([wave, 0.01 * wave]), CFG, 2 * steps)
    assert quiet[loud_step].max() > 0.99 and quiet[steps + loud_step].max() < 0.55


def test_a_long_sound_is_cut_into_training_clips_each_scaled_alone() -> None:
    """`clip_windows`: E_a reads a long sound as the clips it trained on, not squeezed: windows of
    the clip length, the last padded with silence, each with its own dB reference."""
    rate, clip = CFG.sample_rate, 2 * CFG.sample_rate  # 2 s clips of 4 steps
    t = torch.arange(5 * rate) / rate  # 5 s: a loud tone, then a 40 dB quieter one
    wave = torch.sin(2 * torch.pi * 500.0 * t) * torch.where(t < 2.0, 1.0, 0.01)
    full, mel = clip_windows(wave, CFG, clip, 4)
    assert full.shape == (3, 1, CFG.n_mels, 1 + clip // CFG.hop)  # 2 s + 2 s + (1 s + silence)
    assert mel.shape == (12, 1, CFG.n_mels, (clip // 4) // CFG.hop)
    for k in range(2):  # each window is the clip that `clip_mels` makes of its span
        own_full, own_mel = clip_mels(wave[k * clip : (k + 1) * clip], CFG, 4)
        torch.testing.assert_close(full[k], own_full)
        torch.testing.assert_close(mel[4 * k : 4 * (k + 1)], own_mel)
    assert full[1].max() == 1.0  # the quiet window is scaled to its own peak, as a training clip
    last = (full[2].amax(dim=(0, 1)) > 0).float()  # frames holding sound in the padded window
    assert 0.45 < last.mean() < 0.55
    assert clip_windows(wave[:100], CFG, clip, 4, windows=2)[0].shape[0] == 2


def test_fit_length_crops_and_pads() -> None:
    wave = torch.ones(10)
    assert fit_length(wave, 4).tolist() == [1.0] * 4
    assert fit_length(wave, 12).tolist() == [1.0] * 10 + [0.0, 0.0]


def test_specaugment_masks_each_example_in_training_only() -> None:
    torch.manual_seed(0)
    mel = torch.rand(4, 1, 64, 200) * 0.9 + 0.1  # no zeros before masking
    aug = SpecAugment(freq_width=16, time_width=40)
    masked = aug.train()(mel)
    zeros = (masked == 0).flatten(1).sum(dim=1)
    assert torch.all(zeros > 0)
    assert len(set(zeros.tolist())) > 1  # masks differ between examples
    assert torch.equal(aug.eval()(mel), mel)
