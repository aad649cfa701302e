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

The in-memory API behind the command, `walk_sound` (latents) and `generate_video` (frames), is
`model.apps.video`; the start latent's edits are `model.apps.edits`.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from landscape_av.ffmpeg import run_ffmpeg
from model import runtime
from model.apps.checkpoint import open_run
from model.apps.options import (
    ANCHOR,
    DEVICE,
    LEVELS,
    LPIPS_VGG,
    QUIET,
    STEPS,
    STYLE_FROM,
    TEXT,
    TEXT_WEIGHT,
    EditOptions,
    PhotoOptions,
)
from model.apps.video import INTERPOLATIONS, render_frames, walk_sound
from model.audio import MelConfig, load_wave
from model.config import Flag, InputError, UsageError, command, run
from model.styles import ALL_LEVELS
from model.video_model import start_latents

TEXT_STEPS = Flag(
    "text_steps", "Guidance steps toward --text of every walked latent (0: the start latent only)."
)
TEXT_EVERY = Flag(
    "text_every", "Seconds between the keyframes of --text-steps' offsets (0: one per walk step)."
)


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
    run = open_run(cfg.checkpoint, rt.device)
    latents, G, run_cfg = run.latents, run.G, run.cfg
    rate = MelConfig().sample_rate
    wave, _ = load_wave(cfg.audio, rate)
    seconds = wave.shape[0] / rate
    w, refine = None, None
    # the edits (photo inversion, CLIP guidance) bring torchvision: imported when asked for
    if cfg.image is not None or start != EditOptions(anchor=start.anchor):  # an edit to make
        psi = latents.cfg.truncation if cfg.truncation is None else cfg.truncation
        gen = torch.Generator().manual_seed(cfg.seed)  # the start latent walk_sound would draw
        w = None if cfg.image is not None else start_latents(G, 1, psi, generator=gen)
        from model.apps.edits import start_latent

        w = start_latent(run, w, cfg.image, start, photo, rt)
    if cfg.text_steps:
        from model.apps.guidance import guide_walk

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
