"""`python -m model.generate`: a video from any audio file, the original sound muxed in."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.apps.video import resample_walk, walk_drift, walk_sound
from model.config import InputError, apply_overrides
from model.generate import generate
from model.train import TINY_PRESET, TrainConfig, build_config, load_frozen
from model.video_model import SoundToLatents, latent_spread, render, start_latents


def _odd_wav(path: Path, seconds: float = 1.3, rate: int = 22050, channels: int = 3) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([np.sin(2 * np.pi * f * t) for f in (220, 330, 440)[:channels]], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((data * 12000).astype("<i2").tobytes())
    return path


def _probe(path: Path) -> tuple[np.ndarray, float, float, int]:
    """(frames [T, R, R, 3], video seconds, audio seconds, audio channels) of an mp4."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        vsec, asec = float(v.duration * v.time_base), float(a.duration * a.time_base)
        channels = a.codec_context.channels
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return frames, vsec, asec, channels


def test_video_length_follows_any_audio(run_dir, tmp_path):
    audio = _odd_wav(tmp_path / "odd.wav")  # 1.3 s, 22.05 kHz, 3 channels
    g = generate(run_dir, audio, tmp_path / "odd.mp4", fps=10)
    frames, vsec, asec, channels = _probe(g.path)
    assert g.frames == 13 and frames.shape == (13, 16, 16, 3)
    assert abs(vsec - 1.3) < 0.1 and abs(asec - 1.3) < 0.1 and channels == 3
    assert frames.std() > 0  # rendered, not blank


def test_real_recording_and_determinism(run_dir, shared_media, tmp_path):
    audio = shared_media / "waterfall__redeclipse-sounds__creek.ogg"  # 5 s stereo vorbis
    a = generate(run_dir, audio, tmp_path / "a.mp4", fps=4, seed=1)
    b = generate(run_dir, audio, tmp_path / "b.mp4", fps=4, seed=1)
    c = generate(run_dir, audio, tmp_path / "c.mp4", fps=4, seed=2)
    fa, vsec, asec, _ = _probe(a.path)
    assert a.frames == 20 and len(fa) == 20 and abs(vsec - 5.0) < 0.2 and abs(asec - 5.0) < 0.1
    np.testing.assert_array_equal(fa, _probe(b.path)[0])
    assert not np.array_equal(fa, _probe(c.path)[0])


def test_start_from_a_given_wplus(run_dir, tmp_path):
    audio = _odd_wav(tmp_path / "s.wav", seconds=0.8)
    G = load_frozen(build_config(["--tiny", "--shards", "x"]), torch.device("cpu")).G
    torch.save(torch.zeros(G.num_ws, G.w_dim), tmp_path / "w.pt")
    torch.save(torch.full((G.num_ws, G.w_dim), 3.0), tmp_path / "w3.pt")
    one = generate(run_dir, audio, tmp_path / "one.mp4", fps=5, image=tmp_path / "w.pt")
    two = generate(run_dir, audio, tmp_path / "two.mp4", fps=5, image=tmp_path / "w3.pt")
    assert not np.array_equal(_probe(one.path)[0], _probe(two.path)[0])
    torch.save(torch.zeros(3, 5), tmp_path / "bad.pt")
    with pytest.raises(InputError, match=r"W\+ must be \[16, 32\]"):
        generate(run_dir, audio, tmp_path / "bad.mp4", image=tmp_path / "bad.pt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "model.generate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_reports_a_missing_audio_file(run_dir, tmp_path):
    proc = _cli("--checkpoint", str(run_dir), "--audio", str(tmp_path / "nope.wav"))
    assert proc.returncode == 2 and "nope.wav: no such file" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and not (tmp_path / "video.mp4").exists()


@pytest.mark.slow
def test_cli_reports_a_folder_without_checkpoint_in_one_line(tmp_path):
    audio = _odd_wav(tmp_path / "s.wav", seconds=0.5)
    (tmp_path / "empty").mkdir()
    proc = _cli("--checkpoint", str(tmp_path / "empty"), "--audio", str(audio))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"Error: {tmp_path / 'empty'} is neither a checkpoint folder nor a run holding one"
    ]
    proc = _cli("--checkpoint", str(tmp_path / "gone"), "--audio", str(audio))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"Error: --checkpoint {tmp_path / 'gone'}: no such file or folder"
    ]


def test_default_rate_is_the_models_and_higher_rates_interpolate(run_dir, tmp_path):
    audio = _odd_wav(tmp_path / "ten.wav", seconds=10.0, channels=1)
    g = generate(run_dir, audio, tmp_path / "own.mp4")  # the tiny run: 3 frames per 10 s clip
    assert g.frames == 3 and g.fps == pytest.approx(0.3)
    ws = torch.arange(3.0).view(1, 3, 1, 1)  # walked latents 0, 1, 2 at 0.3 steps/s
    lin = resample_walk(ws, 0.3, 0.6, 6, "linear").flatten()
    torch.testing.assert_close(lin, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.0]))
    hold = resample_walk(ws, 0.3, 0.6, 6, "hold").flatten()
    torch.testing.assert_close(hold, torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0]))
    with pytest.raises(ValueError, match="interpolate 'cubic'"):
        resample_walk(ws, 0.3, 0.6, 6, "cubic")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["t64", "r64"])
def test_a_60_s_walk_stays_bounded_and_in_range(shared_dir, name):
    """The fixture networks with a walker pushed the same way at every step (the worst case for
    drift): over 60 s of sound the latents stay within the bound and the frames within the range of
    the generator's own images."""
    from model.stylegan3 import Generator

    d = torch.load(shared_dir / "fixtures" / "stylegan3" / f"{name}.pt", weights_only=True)
    G = Generator(**json.loads(d["init_kwargs"])).eval().requires_grad_(False)
    G.load_state_dict(d["state_dict"])
    cfg = TrainConfig()
    apply_overrides(cfg, TINY_PRESET, "tiny")
    cfg.model.encoder.num_ws = cfg.model.walker.num_ws = G.num_ws
    cfg.model.encoder.w_dim = cfg.model.walker.w_dim = G.w_dim
    cfg.model.fps, radius = 1.0, 0.5 * latent_spread(G)
    cfg.model.walker.radius = radius
    torch.manual_seed(0)
    model = SoundToLatents(cfg.model).eval()
    with torch.no_grad():
        for blk in model.walker.blocks:
            blk.step.bias.fill_(0.5)
    wave = torch.randn(60 * 44100, generator=torch.Generator().manual_seed(0)) * 0.1
    ws = walk_sound(model, G, wave, n_mels=32, smooth=None)  # [1, 60, N, D]
    w_hat = model(*_mels(wave), start_latents(G, 1, 0.7, torch.Generator().manual_seed(0)))[0]
    assert ws.shape == (1, 60, G.num_ws, G.w_dim)
    assert (ws - w_hat[:, None]).norm(dim=-1).max() <= radius
    drift = walk_drift(ws, 1.0)
    assert set(drift) == {1, 10, 60} and 0 < drift[1] < drift[60] <= 2 * radius
    with torch.no_grad():
        own = render(G, start_latents(G, 8, 1.0, torch.Generator().manual_seed(1))[None])
        frames = render(G, ws[:, ::6])
    assert frames.abs().max() <= 1.5 * own.abs().max(), (frames.abs().max(), own.abs().max())


def _mels(wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from model.audio import MelConfig, clip_mels

    full, mel = clip_mels(wave, MelConfig(n_mels=32), 60)
    return full[None], mel[None]


# ----------------------------------------------------------------------------------------------
# --text-steps: the text constraint on every walked latent

PROMPT = "a thunderstorm at night"


def _storm_wave(seconds: int = 20, rate: int = 44100) -> torch.Tensor:
    """A sound whose pitch and loudness jump every half second (6 walk steps of the tiny run)."""
    gen = torch.Generator().manual_seed(0)
    level = torch.rand(2 * seconds, generator=gen).repeat_interleave(rate // 2)
    t = torch.arange(seconds * rate) / rate
    noise = 0.1 * torch.randn(seconds * rate, generator=gen)
    return (level * torch.sin(2 * torch.pi * (200 + 600 * level) * t) + noise).float()


def test_keyframe_basis_interpolates_linearly():
    from model.apps.guidance import keyframe_basis

    basis = keyframe_basis(6, 2.5)  # keyframes at steps 0, 2.5, 5
    assert basis.shape == (6, 3) and torch.allclose(basis.sum(1), torch.ones(6))
    torch.testing.assert_close(basis[1], torch.tensor([0.6, 0.4, 0.0]))
    assert torch.equal(keyframe_basis(4, 0.0), torch.eye(4))  # 0: an offset per step


def test_text_steps_keep_every_frame_on_the_prompt_and_the_motion_of_the_sound(run_dir):
    """Per-step guidance at the mid and fine levels: every step's CLIP similarity to the prompt is
    above the unguided walk's; the step-to-step motion the sound drives stays within half its size
    of the unguided motion (guidance that froze the walk onto one latent would miss it by all of
    it); the coarse ws are bit-identical; two runs agree exactly."""
    from model import runtime
    from model.apps.checkpoint import open_checkpoint
    from model.apps.guidance import guide_walk
    from model.apps.options import EditOptions, PhotoOptions
    from model.styles import style_groups

    run = open_checkpoint(run_dir, torch.device("cpu"))
    wave, rt = _storm_wave(), runtime.Runtime(torch.device("cpu"))
    opts = EditOptions("mid,fine", text=PROMPT)

    def refine(ws: torch.Tensor) -> torch.Tensor:  # 4 guidance steps, keyframes 15 s apart
        return guide_walk(run, ws, opts, 4, 15.0, PhotoOptions(quiet=True), rt)

    def walk(guided: bool) -> torch.Tensor:
        n_mels = run.cfg["n_mels"]
        return walk_sound(
            run.latents, run.G, wave, n_mels, seed=1, refine=refine if guided else None
        )

    def similarity(ws: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            image = clip.encode_image(run.G.synthesis(ws[0]))
        return F.cosine_similarity(image, clip.encode_text([PROMPT]))

    clip = run.clip()
    plain, guided = walk(False), walk(True)
    assert plain.shape[1] == 6 and torch.equal(guided, walk(True))
    assert (similarity(guided) > similarity(plain)).all(), (similarity(plain), similarity(guided))
    coarse, mid_fine = style_groups(16)[0], slice(style_groups(16)[1].start, 16)
    motion, kept = plain[:, :, mid_fine].diff(dim=1), guided[:, :, mid_fine].diff(dim=1)
    assert motion.norm() > 0
    assert (kept - motion).norm() < 0.5 * motion.norm(), ((kept - motion).norm(), motion.norm())
    assert torch.equal(guided[:, :, coarse], plain[:, :, coarse])
    assert not torch.equal(guided[:, :, mid_fine], plain[:, :, mid_fine])


@pytest.mark.slow
def test_cli_guides_every_step_toward_the_text(run_dir, tmp_path):
    audio = _odd_wav(tmp_path / "s.wav", seconds=10.0, channels=1)
    out = tmp_path / "storm.mp4"
    base = ["--checkpoint", str(run_dir), "--audio", str(audio), "--out", str(out), "--quiet"]
    proc = _cli(*base, "--text", PROMPT, "--text-steps", "2", "--steps", "2", "--levels", "fine")
    assert proc.returncode == 0, proc.stderr
    assert f"{out}: 3 frames" in proc.stdout and len(_probe(out)[0]) == 3
    proc = _cli(*base, "--text-steps", "2")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "Error: --text-steps needs --text: it guides each step toward that prompt"
    ]
