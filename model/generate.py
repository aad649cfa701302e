"""A video from any sound: `python -m model.generate --checkpoint RUN_DIR --audio s.wav --out v.mp4`.

The audio (any container, length, rate, channel count PyAV reads) becomes a mono 44.1 kHz waveform;
T = round(duration * fps) frames (at least one), frame t driven by the audio segment
[t*D/T, (t+1)*D/T) and the whole sound inverted into the start latent (eq. 1). The walk is smoothed
(`--smooth`, the paper's 0.4), frames are rendered by the run's frozen StyleGAN3 in chunks, encoded to
H.264, and the ORIGINAL sound is muxed in (AAC), so the video lasts as long as the audio (to within
half a frame). `--image` starts from a photo (inverted into W+ as `model.invert` does: the photo
moves with the sound) or a saved W+ latent ([num_ws, w_dim] or [1, num_ws, w_dim], a torch.save'd
tensor) instead of a random one; `--style-from` and `--text` then style-mix and CLIP-guide that start
latent at `--levels` (see `model.edit`).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import torch

from landscape_av.ffmpeg import run_ffmpeg
from model import runtime
from model.audio import MelConfig, clip_mels, decode_audio
from model.video_model import SoundToLatents, VideoModelConfig, freeze, render, start_latents

if TYPE_CHECKING:  # model.edit and model.invert build on this module: imported where used
    from model.edit import EditOptions
    from model.invert import PhotoOptions


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


@torch.no_grad()
def generate(
    checkpoint: str | Path,
    audio: str | Path,
    out: str | Path,
    fps: float = 8.0,
    seed: int = 0,
    truncation: float | None = None,
    smooth: float | None = 0.4,
    image: str | Path | None = None,
    device: str = "auto",
    chunk: int = 16,
    start: EditOptions | None = None,
    photo: PhotoOptions | None = None,
) -> Generated:
    """`start`: style mixing / text guidance of the start latent; `photo`: how `image` is inverted."""
    rt = runtime.setup(device)
    latents, G, cfg = load_run(checkpoint, rt.device)
    mel_cfg = MelConfig(n_mels=cfg["n_mels"])
    wave, rate = decode_audio(audio, mel_cfg.sample_rate)
    seconds = wave.shape[0] / rate
    T = max(1, round(seconds * fps))
    if wave.shape[0] < T:
        raise ValueError(f"{audio}: {wave.shape[0]} samples are too short for one frame")
    mel_full, mel = clip_mels(wave, mel_cfg, T)  # [1, M, L], [T, 1, M, S]

    gen = torch.Generator().manual_seed(seed)
    psi = cfg["model"]["truncation"] if truncation is None else truncation
    w = start_latents(G, 1, psi, generator=gen) if image is None else None
    if image is not None or start is not None:
        from model.edit import EditOptions, start_latent
        from model.invert import PhotoOptions, Run

        run = Run(Path(checkpoint), G, latents, cfg, rt.device)
        w = start_latent(run, w, image, start or EditOptions(), photo or PhotoOptions(), rt)
    noise = torch.randn(1, T, latents.cfg.walker.noise_dim, generator=gen).to(rt.device)
    dev = rt.device
    _, ws = latents(mel_full[None].to(dev), mel[None].to(dev), w, noise, smooth)  # [1, T, N, D]

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        silent = Path(tmp) / "video.mp4"
        with av.open(str(silent), "w") as container:
            stream = container.add_stream("libx264", rate=_fraction(fps))
            stream.width = stream.height = G.img_resolution
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for start in range(0, T, chunk):
                frames = render(G, ws[:, start : start + chunk])[0]  # [t, 3, R, R]
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
    p.add_argument("--fps", type=float, default=8.0, help="frames per second of audio")
    p.add_argument("--seed", type=int, default=0, help="start latent and walk noise")
    p.add_argument("--truncation", type=float, help="psi of the start latent (default: the run's)")
    p.add_argument("--smooth", type=float, default=0.4, help="walk smoothing, 0 < m <= 1 (1: off)")
    p.add_argument("--image", help="start from this photo or W+ (.pt tensor [num_ws, w_dim])")
    p.add_argument("--steps", type=int, default=300, help="inversion / guidance steps")
    p.add_argument("--lpips-vgg", help="VGG16 weights for LPIPS when inverting a photo")
    p.add_argument("--style-from", help="style-mix the start latent from a photo, W+ or seed")
    p.add_argument("--levels", default="coarse,mid,fine", help="levels of --style-from/--text")
    p.add_argument("--text", help="CLIP text constraint on the start latent")
    p.add_argument("--text-weight", type=float, default=1.0, help="weight of --text")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    a = p.parse_args(argv)
    if not 0 < a.smooth <= 1:
        p.error("--smooth must be in (0, 1]")
    if a.fps <= 0:
        p.error("--fps must be positive")
    for flag, path in (("--audio", a.audio), ("--image", a.image)):
        if path is not None and not Path(path).is_file():
            p.error(f"{flag} {path}: no such file")
    from model.edit import EditOptions
    from model.invert import PhotoOptions

    start = EditOptions(a.levels, text=a.text, text_weight=a.text_weight, style_from=a.style_from)
    photo = PhotoOptions(steps=a.steps, lpips_vgg=a.lpips_vgg)
    try:
        g = generate(
            a.checkpoint, a.audio, a.out, a.fps, a.seed, a.truncation, a.smooth, a.image,
            a.device, start=start, photo=photo,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{g.path}: {g.frames} frames at {g.fps:g} fps for {g.audio_seconds:.2f} s of audio")


if __name__ == "__main__":
    main()
