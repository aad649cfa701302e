"""`python -m model.generate`: a video from any audio file, the original sound muxed in."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from model.generate import generate
from model.train import build_config, load_frozen


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
    with pytest.raises(ValueError, match=r"W\+ must be \[16, 32\]"):
        generate(run_dir, audio, tmp_path / "bad.mp4", image=tmp_path / "bad.pt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "model.generate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_cli_reports_a_missing_audio_file(run_dir, tmp_path):
    proc = _cli("--checkpoint", str(run_dir), "--audio", str(tmp_path / "nope.wav"))
    assert proc.returncode == 2 and "nope.wav: no such file" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and not (tmp_path / "video.mp4").exists()


def test_cli_reports_a_folder_without_checkpoint_in_one_line(tmp_path):
    audio = _odd_wav(tmp_path / "s.wav", seconds=0.5)
    (tmp_path / "empty").mkdir()
    proc = _cli("--checkpoint", str(tmp_path / "empty"), "--audio", str(audio))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"Error: {tmp_path / 'empty'} is neither a checkpoint folder nor a run holding one"
    ]
    proc = _cli("--checkpoint", str(tmp_path / "gone"), "--audio", str(audio))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"Error: --checkpoint {tmp_path / 'gone'}: no such file or folder"
    ]
