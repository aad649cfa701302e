"""A video from any sound: `python -m model.generate --checkpoint RUN_DIR --audio s.wav --out v.mp4`.

The audio (any container, length, rate, channel count PyAV reads) becomes a mono 44.1 kHz waveform.
The walk takes the model's own rate (`model.fps`, frames per second of sound, as in training):
T = round(duration * model.fps) steps (at least one), step t driven by the audio segment
[t*D/T, (t+1)*D/T) and the whole sound inverted into the start latent (eq. 1); the walk's bound keeps
long sounds from drifting. The walk is smoothed (`--smooth`, the authors' code's 0.4). A higher
output rate (`--fps`) interpolates between walked latents (`--interpolate linear`, or `hold` each)
instead of walking more steps than the model was trained on. Frames are rendered by the run's frozen
StyleGAN3 in chunks, encoded to H.264, and the ORIGINAL sound is muxed in (AAC), so the video lasts
as long as the audio (to within half a frame). `--image wplus.pt` starts from a given W+ latent
([num_ws, w_dim] or [1, num_ws, w_dim], a torch.save'd tensor) instead of a random one.

`walk_sound` (latents) and `generate_video` (frames) are the in-memory API behind the command.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from landscape_av.ffmpeg import run_ffmpeg
from model import runtime
from model.audio import MelConfig, clip_mels, decode_audio
from model.video_model import SoundToLatents, VideoModelConfig, freeze, render, start_latents


@dataclass
class Generated:
    path: Path
    frames: int
    fps: float
    audio_seconds: float


def checkpoint_folder(path: str | Path) -> Path:
    """A checkpoint folder itself, or the newest one of a run folder."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    latest = runtime.Checkpointer(path).latest()
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint folder nor a run holding one")
    return latest


def load_run(
    path: str | Path, device: torch.device
) -> tuple[SoundToLatents, torch.nn.Module, dict]:
    """(E_a + walker, frozen generator, training config) of a checkpoint, in eval mode."""
    from model.stylegan3 import Generator

    folder = checkpoint_folder(path)
    cfg = runtime.read_config(folder)
    latents = SoundToLatents(VideoModelConfig.from_dict(cfg["model"]))
    G = Generator(**cfg["generator_kwargs"])
    runtime.load_weights(folder, {"latents": latents, "generator": G})
    return latents.to(device).eval(), freeze(G.to(device)), cfg


def load_wplus(path: str | Path, num_ws: int, w_dim: int) -> torch.Tensor:
    """A W+ latent from a torch file: [1, num_ws, w_dim]."""
    w = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"--image {path}: expected a tensor, found {type(w).__name__}")
    w = w.float().reshape(-1, *w.shape[-2:]) if w.dim() >= 2 else w
    if tuple(w.shape) != (1, num_ws, w_dim):
        raise ValueError(f"--image {path}: W+ must be [{num_ws}, {w_dim}], got {list(w.shape)}")
    return w


INTERPOLATIONS = ("linear", "hold")


def resample_walk(ws: torch.Tensor, steps_per_second: float, fps: float, frames: int, how: str):
    """Walked latents ws [B, T, N, D] at `steps_per_second` -> `frames` latents at `fps`: output frame
    j at time j / fps takes walk position j * steps_per_second / fps, between two walked latents
    linearly (`linear`) or the earlier one (`hold`), clamped to the walk's last step."""
    if how not in INTERPOLATIONS:
        raise ValueError(f"interpolate {how!r}: expected one of {', '.join(INTERPOLATIONS)}")
    pos = (torch.arange(frames, dtype=torch.float64) * steps_per_second / fps).clamp(
        max=ws.shape[1] - 1
    )
    lo = pos.floor().long()
    if how == "hold":
        return ws[:, lo]
    hi = (lo + 1).clamp(max=ws.shape[1] - 1)
    frac = (pos - lo).to(ws.dtype).to(ws.device).view(1, -1, 1, 1)
    return torch.lerp(ws[:, lo], ws[:, hi], frac)


@torch.no_grad()
def walk_sound(
    latents: SoundToLatents,
    G: torch.nn.Module,
    wave: torch.Tensor,
    n_mels: int,
    fps: float | None = None,
    seed: int = 0,
    truncation: float | None = None,
    smooth: float | None = 0.4,
    interpolate: str = "linear",
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """W+ latents [1, F, N, D] of a mono 44.1 kHz waveform [S]: F = round(seconds * fps) output
    frames (fps None: the model's rate, no interpolation). `w` [1, N, D] replaces the random start
    latent; `seed` draws it and the walk noise."""
    mel_cfg = MelConfig(n_mels=n_mels)
    rate = latents.cfg.fps
    seconds = wave.shape[0] / mel_cfg.sample_rate
    steps = max(1, round(seconds * rate))
    if wave.shape[0] < steps * mel_cfg.hop:
        raise ValueError(f"{wave.shape[0]} samples are too short for one frame")
    mel_full, mel = clip_mels(wave, mel_cfg, steps)  # [1, M, L], [T, 1, M, S]
    dev = next(latents.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    psi = latents.cfg.truncation if truncation is None else truncation
    w = start_latents(G, 1, psi, generator=gen) if w is None else w.to(dev)
    noise = torch.randn(1, steps, latents.cfg.walker.noise_dim, generator=gen).to(dev)
    _, ws = latents(mel_full[None].to(dev), mel[None].to(dev), w, noise, smooth)  # [1, T, N, D]
    fps = rate if fps is None else fps
    return resample_walk(ws, rate, fps, max(1, round(seconds * fps)), interpolate)


def render_frames(G: torch.nn.Module, ws: torch.Tensor, chunk: int = 16) -> Iterator[torch.Tensor]:
    """Frames of latents ws [1, F, N, D], `chunk` at a time: [<=chunk, 3, R, R] each (unclamped)."""
    for start in range(0, ws.shape[1], chunk):
        yield render(G, ws[:, start : start + chunk])[0]


@torch.no_grad()
def generate_video(
    latents: SoundToLatents, G: torch.nn.Module, wave: torch.Tensor, n_mels: int, **walk: Any
) -> torch.Tensor:
    """Frames [F, 3, R, R] in [-1, 1] of a mono 44.1 kHz waveform [S] (`walk`: see `walk_sound`)."""
    ws = walk_sound(latents, G, wave, n_mels, **walk)
    return torch.cat(list(render_frames(G, ws))).clamp(-1, 1)


def walk_drift(ws: torch.Tensor, fps: float, seconds: tuple[float, ...] = (1, 10, 60)) -> dict:
    """How far a sound has carried the walk: mean over ws of ||w(s) - w(0)|| for ws [B, T, N, D] at
    `fps`, at each of `seconds` (the walk's last latent for a time past its end)."""
    last = ws.shape[1] - 1
    return {
        s: (ws[:, min(round(s * fps), last)] - ws[:, 0]).norm(dim=-1).mean().item() for s in seconds
    }


@torch.no_grad()
def generate(
    checkpoint: str | Path,
    audio: str | Path,
    out: str | Path,
    fps: float | None = None,
    seed: int = 0,
    truncation: float | None = None,
    smooth: float | None = 0.4,
    image: str | Path | None = None,
    device: str = "auto",
    chunk: int = 16,
    interpolate: str = "linear",
) -> Generated:
    rt = runtime.setup(device)
    latents, G, cfg = load_run(checkpoint, rt.device)
    wave, _ = decode_audio(audio, MelConfig().sample_rate)
    seconds = wave.shape[0] / MelConfig().sample_rate
    w = None if image is None else load_wplus(image, G.num_ws, G.w_dim)
    try:
        ws = walk_sound(
            latents, G, wave, cfg["n_mels"], fps, seed, truncation, smooth, interpolate, w
        )
    except ValueError as e:
        raise ValueError(f"{audio}: {e}") from e
    fps = latents.cfg.fps if fps is None else fps
    T = ws.shape[1]

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        silent = Path(tmp) / "video.mp4"
        with av.open(str(silent), "w") as container:
            stream = container.add_stream("libx264", rate=_fraction(fps))
            stream.width = stream.height = G.img_resolution
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for frames in render_frames(G, ws, chunk):
                rgb = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                for img in rgb.permute(0, 2, 3, 1).cpu().numpy():
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    container.mux(stream.encode(frame))
            container.mux(stream.encode())
        run_ffmpeg(
            ["-i", silent, "-i", audio, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
            + ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", out]
        )
    return Generated(out, T, fps, seconds)


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="run folder (newest checkpoint) or one")
    p.add_argument("--audio", required=True, help="any audio (or video with sound) file")
    p.add_argument("--out", required=True, help="output .mp4")
    p.add_argument("--fps", type=float, help="output frames per second (default: the model's)")
    p.add_argument("--interpolate", default="linear", choices=INTERPOLATIONS, help="--fps frames")
    p.add_argument("--seed", type=int, default=0, help="start latent and walk noise")
    p.add_argument("--truncation", type=float, help="psi of the start latent (default: the run's)")
    p.add_argument("--smooth", type=float, default=0.4, help="walk smoothing, 0 < m <= 1 (1: off)")
    p.add_argument("--image", help="start from this W+ (.pt tensor [num_ws, w_dim])")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    a = p.parse_args(argv)
    if not 0 < a.smooth <= 1:
        p.error("--smooth must be in (0, 1]")
    if a.fps is not None and a.fps <= 0:
        p.error("--fps must be positive")
    for flag, path in (("--audio", a.audio), ("--image", a.image)):
        if path is not None and not Path(path).is_file():
            p.error(f"{flag} {path}: no such file")
    g = generate(
        a.checkpoint,
        a.audio,
        a.out,
        a.fps,
        a.seed,
        a.truncation,
        a.smooth,
        a.image,
        a.device,
        interpolate=a.interpolate,
    )
    print(f"{g.path}: {g.frames} frames at {g.fps:g} fps for {g.audio_seconds:.2f} s of audio")


if __name__ == "__main__":
    main()
