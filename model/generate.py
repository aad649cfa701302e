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

import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import torch

from landscape_av.ffmpeg import run_ffmpeg
from model import runtime
from model.audio import MelConfig, clip_mels, load_wave
from model.config import Flag, InputError, UsageError, command, run
from model.styles import ALL_LEVELS
from model.video_model import SoundToLatents, VideoModelConfig, freeze, render, start_latents

if TYPE_CHECKING:  # model.edit and model.invert build on this module: imported where used
    from model.edit import EditOptions
    from model.invert import PhotoOptions


# Flags of the photo and edit settings, worded once for generate, invert and edit (keys of
# GenerateConfig, PhotoOptions and EditOptions alike; `Flag.within` puts them in a section)
STEPS = Flag("steps", "Optimizer steps of the photo's inversion and of the CLIP guidance.")
LPIPS_VGG = Flag(
    "lpips_vgg", "torchvision VGG16 weights for LPIPS (a tiny run: a random stand-in).", exists=True
)
QUIET = Flag("quiet", "No progress bars.")
STYLE_FROM = Flag("style_from", "Style mixing source: a photo, a W+ (.pt) or a seed.")
LEVELS = Flag("levels", "W+ levels (comma-separated coarse, mid, fine) that the edits change.")
TEXT = Flag("text", "CLIP text constraint, e.g. 'a thunderstorm at night'.")
TEXT_WEIGHT = Flag("text_weight", "Weight of --text.")
DEVICE = Flag("device", "Where to render.", choices=runtime.DEVICES)


@dataclass
class GenerateConfig:
    checkpoint: str = ""  # run folder (its newest checkpoint) or one checkpoint folder
    audio: str = ""  # any audio (or video with sound) file
    out: str = "video.mp4"
    fps: float = 8.0  # video frames per second of audio
    seed: int = 0  # start latent and walk noise
    truncation: float | None = None  # psi of the start latent (None: the run's)
    smooth: float | None = 0.4  # walk smoothing momentum, 0 < m <= 1 (1 or None: off)
    image: str | None = None  # start from this photo (inverted) or W+ (.pt tensor [num_ws, w_dim])
    steps: int = 300  # inversion / guidance steps of --image, --text, --style-from
    lpips_vgg: str | None = None  # VGG16 weights for LPIPS when inverting a photo
    style_from: str | None = None  # style-mix the start latent from a photo, W+ or seed
    levels: str = ALL_LEVELS  # W+ levels that --style-from and --text change
    text: str | None = None  # CLIP text constraint on the start latent
    text_weight: float = 1.0  # weight of --text
    device: str = "auto"
    chunk: int = 16  # frames rendered at once
    quiet: bool = False  # no progress bars


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
        raise InputError(f"{path} is neither a checkpoint folder nor a run holding one")
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
        raise InputError(f"--image {path}: expected a tensor, found {type(w).__name__}")
    w = w.float().reshape(-1, *w.shape[-2:]) if w.dim() >= 2 else w
    if tuple(w.shape) != (1, num_ws, w_dim):
        raise InputError(f"--image {path}: W+ must be [{num_ws}, {w_dim}], got {list(w.shape)}")
    return w


@torch.no_grad()
def generate(
    checkpoint: str | Path,
    audio: str | Path,
    out: str | Path,
    start: EditOptions | None = None,
    photo: PhotoOptions | None = None,
    **settings: Any,
) -> Generated:
    """A video of `audio` by the run `checkpoint`; `settings` are `GenerateConfig` fields.
    `start`: style mixing / text guidance of the start latent (default: from `settings`);
    `photo`: how `image` is inverted (default: from `settings`)."""
    from model.edit import EditOptions, start_latent
    from model.invert import PhotoOptions, Run

    cfg = GenerateConfig(str(checkpoint), str(audio), str(out), **settings)
    start = start or EditOptions(
        cfg.levels, text=cfg.text, text_weight=cfg.text_weight, style_from=cfg.style_from
    )
    photo = photo or PhotoOptions(steps=cfg.steps, lpips_vgg=cfg.lpips_vgg, quiet=cfg.quiet)
    audio, fps, chunk = cfg.audio, cfg.fps, cfg.chunk
    rt = runtime.setup(cfg.device)
    latents, G, run_cfg = load_run(cfg.checkpoint, rt.device)
    mel_cfg = MelConfig(n_mels=run_cfg["n_mels"])
    wave, rate = load_wave(audio, mel_cfg.sample_rate)
    seconds = wave.shape[0] / rate
    T = max(1, round(seconds * fps))
    if wave.shape[0] < T:
        raise InputError(f"{audio}: {wave.shape[0]} samples are too short for one frame")
    mel_full, mel = clip_mels(wave, mel_cfg, T)  # [1, M, L], [T, 1, M, S]

    gen = torch.Generator().manual_seed(cfg.seed)
    psi = run_cfg["model"]["truncation"] if cfg.truncation is None else cfg.truncation
    w = start_latents(G, 1, psi, generator=gen) if cfg.image is None else None
    if cfg.image is not None or start != EditOptions():
        run = Run(Path(cfg.checkpoint), G, latents, run_cfg, rt.device)
        w = start_latent(run, w, cfg.image, start, photo, rt)
    noise = torch.randn(1, T, latents.cfg.walker.noise_dim, generator=gen).to(rt.device)
    dev = rt.device
    _, ws = latents(mel_full[None].to(dev), mel[None].to(dev), w, noise, cfg.smooth)  # [1, T, N, D]

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        silent = Path(tmp) / "video.mp4"
        with av.open(str(silent), "w") as container:
            stream = container.add_stream("libx264", rate=_fraction(fps))
            stream.width = stream.height = G.img_resolution
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for t0 in range(0, T, chunk):
                frames = render(G, ws[:, t0 : t0 + chunk])[0]  # [t, 3, R, R]
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


@command(
    "python -m model.generate",
    GenerateConfig,
    [
        Flag(
            "checkpoint", "Run folder (its newest checkpoint) or one.", exists=True, required=True
        ),
        Flag("audio", "Any audio (or video with sound) file.", exists=True, required=True),
        Flag("out", "Output .mp4."),
        Flag("fps", "Video frames per second of audio."),
        Flag("seed", "Seed of the start latent and the walk noise."),
        Flag("truncation", "psi of the start latent (default: the run's)."),
        Flag("smooth", "Walk smoothing momentum, 0 < m <= 1 (1: off)."),
        Flag("image", "Start from this photo (inverted) or W+ (.pt [num_ws, w_dim]).", exists=True),
        STEPS,
        LPIPS_VGG,
        STYLE_FROM,
        LEVELS,
        TEXT,
        TEXT_WEIGHT,
        QUIET,
        DEVICE,
    ],
)
def cli(cfg: GenerateConfig) -> None:
    """A video from any sound, the sound muxed in."""
    if cfg.smooth is not None and not 0 < cfg.smooth <= 1:
        raise UsageError(f"--smooth {cfg.smooth}: must be in (0, 1]")
    if cfg.fps <= 0:
        raise UsageError(f"--fps {cfg.fps}: must be positive")
    g = generate(**asdict(cfg))
    print(f"{g.path}: {g.frames} frames at {g.fps:g} fps for {g.audio_seconds:.2f} s of audio")


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
