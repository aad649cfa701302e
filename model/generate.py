"""A video from any sound: `python -m model.generate --checkpoint RUN_DIR --audio s.wav --out v.mp4`.

The audio (any container, length, rate, channel count PyAV reads) becomes a mono 44.1 kHz waveform.
The walk takes the model's own rate (`model.fps`, frames per second of sound, as in training):
T = round(duration * model.fps) steps (at least one), step t driven by the audio segment
[t*D/T, (t+1)*D/T) and the whole sound inverted into the start latent (eq. 1); the walk's bound keeps
long sounds from drifting. The walk is smoothed (`--smooth`, the authors' code's 0.4). A higher
output rate (`--fps`) interpolates between walked latents (`--interpolate linear`, or `hold` each)
instead of walking more steps than the model was trained on. Frames are rendered by the run's frozen
StyleGAN3 in chunks, encoded to H.264, and the ORIGINAL sound is muxed in (AAC), so the video lasts
as long as the audio (to within half a frame). `--image` starts from a photo (inverted into W+ as
`model.invert` does: the photo moves with the sound) or a saved W+ latent ([num_ws, w_dim] or
[1, num_ws, w_dim], a torch.save'd tensor) instead of a random one; `--style-from` and `--text` then
style-mix and CLIP-guide that start latent at `--levels` (see `model.edit`). `--text-steps N` also
guides every walked latent toward `--text` (N Adam steps over the walk, at `--levels`, each latent
with an `--anchor` L2 pull back to the walker's), so each frame keeps to the prompt while the sound
drives the motion. Those guidance offsets are keyframes `--text-every` seconds apart, linear between
them: independent per-step offsets would jitter the motion. The default guides the start latent
only (cheaper).

`walk_sound` (latents) and `generate_video` (frames) are the in-memory API behind the command.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
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
from model.torch_files import load_torch_file
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
ANCHOR = Flag("anchor", "Weight of the guidance's L2 anchor to the latent it starts from.")
TEXT_STEPS = Flag(
    "text_steps", "Guidance steps toward --text of every walked latent (0: the start latent only)."
)
TEXT_EVERY = Flag(
    "text_every", "Seconds between the keyframes of --text-steps' offsets (0: one per walk step)."
)
DEVICE = Flag("device", "Where to render.", choices=runtime.DEVICES)


@dataclass
class GenerateConfig:
    checkpoint: str = ""  # run folder (its newest checkpoint) or one checkpoint folder
    audio: str = ""  # any audio (or video with sound) file
    out: str = "video.mp4"
    fps: float | None = None  # output frames per second (None: the model's own walk rate)
    interpolate: str = "linear"  # output frames between walked latents: linear | hold
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
    text_steps: int = 0  # --text guidance steps of every walked latent (0: the start latent only)
    text_every: float = 5.0  # seconds between the keyframes of those guidance offsets
    anchor: float = 0.008  # L2 anchor of the guidance to the latent it starts from
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


def load_wplus(path: str | Path, num_ws: int, w_dim: int) -> torch.Tensor:
    """A W+ latent from a torch file: [1, num_ws, w_dim]."""
    try:
        w = load_torch_file(path)
    except ValueError as e:
        raise InputError(f"--image {e}") from e
    if not isinstance(w, torch.Tensor):
        raise InputError(f"--image {path}: expected a tensor, found {type(w).__name__}")
    w = w.float().reshape(-1, *w.shape[-2:]) if w.dim() >= 2 else w
    if tuple(w.shape) != (1, num_ws, w_dim):
        raise InputError(f"--image {path}: W+ must be [{num_ws}, {w_dim}], got {list(w.shape)}")
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
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """W+ latents [1, F, N, D] of a mono 44.1 kHz waveform [S]: F = round(seconds * fps) output
    frames (fps None: the model's rate, no interpolation). `w` [1, N, D] replaces the random start
    latent; `seed` draws it and the walk noise. `refine` maps the walked latents [1, T, N, D] (the
    model's rate) before they are resampled (`edit.guide_walk`: the per-step text constraint)."""
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
    ws = ws if refine is None else refine(ws)
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
    start: EditOptions | None = None,
    photo: PhotoOptions | None = None,
    **settings: Any,
) -> Generated:
    """A video of `audio` by the run `checkpoint`; `settings` are `GenerateConfig` fields.
    `start`: style mixing / text guidance of the start latent (default: from `settings`);
    `photo`: how `image` is inverted (default: from `settings`)."""
    from model.edit import EditOptions, guide_walk, start_latent
    from model.invert import PhotoOptions, Run

    cfg = GenerateConfig(str(checkpoint), str(audio), str(out), **settings)
    start = start or EditOptions(
        cfg.levels,
        anchor=cfg.anchor,
        text=cfg.text,
        text_weight=cfg.text_weight,
        style_from=cfg.style_from,
    )
    if cfg.text_steps and start.text is None:
        raise UsageError("--text-steps needs --text: it guides each step toward that prompt")
    photo = photo or PhotoOptions(steps=cfg.steps, lpips_vgg=cfg.lpips_vgg, quiet=cfg.quiet)
    rt = runtime.setup(cfg.device)
    latents, G, run_cfg = load_run(cfg.checkpoint, rt.device)
    rate = MelConfig().sample_rate
    wave, _ = load_wave(cfg.audio, rate)
    seconds = wave.shape[0] / rate
    w, refine = None, None
    run = Run(Path(cfg.checkpoint), G, latents, run_cfg, rt.device)
    if cfg.image is not None or start != EditOptions(anchor=start.anchor):  # an edit to make
        psi = latents.cfg.truncation if cfg.truncation is None else cfg.truncation
        gen = torch.Generator().manual_seed(cfg.seed)  # the start latent walk_sound would draw
        w = None if cfg.image is not None else start_latents(G, 1, psi, generator=gen)
        w = start_latent(run, w, cfg.image, start, photo, rt)
    if cfg.text_steps:
        refine = partial(
            guide_walk, run, opts=start, steps=cfg.text_steps, every=cfg.text_every, photo=photo,
            rt=rt, chunk=cfg.chunk,
        )  # fmt: skip
    try:
        ws = walk_sound(
            latents, G, wave, run_cfg["n_mels"], cfg.fps, cfg.seed, cfg.truncation, cfg.smooth,
            cfg.interpolate, w, refine,
        )  # fmt: skip
    except ValueError as e:
        raise InputError(f"{cfg.audio}: {e}") from e
    fps = latents.cfg.fps if cfg.fps is None else cfg.fps
    T = ws.shape[1]

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        silent = Path(tmp) / "video.mp4"
        with av.open(str(silent), "w") as container:
            stream = container.add_stream("libx264", rate=_fraction(fps))
            stream.width = stream.height = G.img_resolution
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for frames in render_frames(G, ws, cfg.chunk):
                rgb = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                for img in rgb.permute(0, 2, 3, 1).cpu().numpy():
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    container.mux(stream.encode(frame))
            container.mux(stream.encode())
        run_ffmpeg(
            ["-i", silent, "-i", cfg.audio, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
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
        Flag("fps", "Output frames per second (default: the model's own walk rate)."),
        Flag(
            "interpolate",
            "How --fps frames between walked latents are made.",
            choices=INTERPOLATIONS,
        ),
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
        TEXT_STEPS,
        TEXT_EVERY,
        ANCHOR,
        QUIET,
        DEVICE,
    ],
)
def cli(cfg: GenerateConfig) -> None:
    """A video from any sound, the sound muxed in."""
    if cfg.smooth is not None and not 0 < cfg.smooth <= 1:
        raise UsageError(f"--smooth {cfg.smooth}: must be in (0, 1]")
    if cfg.fps is not None and cfg.fps <= 0:
        raise UsageError(f"--fps {cfg.fps}: must be positive")
    for flag, value in (
        ("--text-steps", cfg.text_steps),
        ("--text-every", cfg.text_every),
        ("--anchor", cfg.anchor),
    ):
        if value < 0:
            raise UsageError(f"{flag} {value}: must be 0 or more")
    g = generate(**asdict(cfg))
    print(f"{g.path}: {g.frames} frames at {g.fps:g} fps for {g.audio_seconds:.2f} s of audio")


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
