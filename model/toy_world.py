"""A toy world in which following the sound is the right answer (a test bed for `model.train`).

CPU cannot train with the real CLIP, F_a and StyleGAN3, and with random tiny ones nothing in the
losses rewards following the sound. Here every frozen part is the toy's own:

- **Generator**: a tiny StyleGAN3-T (`TOY_GENERATOR`) looking at one scene. Its first w pans the
  camera horizontally (the input layer's translation, as a trained StyleGAN3-T's w[0] can; a random
  one's cannot: its translation weights start at zero) along one direction `u` of W, the direction
  in which random start latents vary least, so that a start latent barely pans. The other ws change
  the scene a little (style weights x `STYLE_SCALE`). Saved as a `model.stylegan3` checkpoint and
  passed to `model.train --generator` like any generator.
- **Stand-ins for CLIP and F_a** (`model.toy_standins`): the phase of where a frame's light lies,
  and a segment's loudness as an angle, in one 3-d embedding.

So eq. 2's cosine is highest when the camera points where the sound says. The generator is
calibrated so that its mean latent w_avg shows phase 0.

**Clips** (`SECONDS` long, `STEPS` steps of 1 / `FPS` s): faint noise with tone bursts (sharp attack
0.1 s into a step, 0.12 s decay), at least three steps apart. Frame t (time t / FPS) pans where the
loudness of segment t - 1 points (the paper's segment rule, `model.video_model.frame_step`), frame 0
where the whole clip's does: loud steps swing the picture one way, the decay and the quiet bring it
back, so the picture moves at the sound's onsets. Written as corpus shards (`mp4` H.264, `flac`,
`json`) that `model.train`, `model.generate` and `model.evaluate` read as they read the corpus.
The stand-ins are named in a run's config (`standins: toy`), so every command that loads a run's
CLIP and F_a gets them.

    python -m model.toy_world --out toy      # toy/generator.safetensors, toy/data/*.tar, toy/train.yaml
    python -m model.train --config toy/train.yaml --out runs/toy
"""

from __future__ import annotations

import io
import json
import math
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor, nn

from model.audio import MelConfig, clip_mels
from model.config import Flag, command, run
from model.toy_standins import KAPPA, Q0, loudness, luminance_phase
from model.train import TINY_GENERATOR

SECONDS = 4.0
"""Length of a toy clip."""
FPS = 2.0
"""Walk steps (frames) per second of sound: a clip has STEPS steps."""
STEPS = round(SECONDS * FPS)
N_MELS = 32
RATE = MelConfig().sample_rate
CLASS = "toy pan"

TOY_GENERATOR = TINY_GENERATOR | {"num_layers": 6, "output_scale": 0.625}
"""Constructor arguments of the toy generator: `model.train`'s TINY_GENERATOR with 6 layers and
2.5 times its output scale (enough contrast for optical flow, frames still inside [-1, 1])."""
STYLE_SCALE = 0.1
"""Factor on the style weights of the toy generator's layers (how much ws 1.. change the scene)."""
PAN_GAIN = 1 / 8
"""Pan (input units; 1/16 unit is one output pixel) per unit of w[0] along `u`."""


# ----------------------------------------------------------------------------------------------
# The frozen parts


GENERATOR_SEED = 0
"""Seed of the toy generator: one fixed network, as the paper's one pretrained StyleGAN3."""


def toy_generator() -> nn.Module:
    """The toy's frozen generator (see the module docstring)."""
    from model.stylegan3 import Generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(GENERATOR_SEED)
        G = Generator(**TOY_GENERATOR).eval().requires_grad_(False)
        with torch.no_grad():
            w = G.mapping(torch.randn(4096, G.z_dim), None, truncation_psi=1.0)[:, 0]
            G.mapping.w_avg.copy_(w.mean(0))  # as a trained mapping network tracks it
            u = torch.linalg.eigh(torch.cov(w.T)).eigenvectors[:, 0]  # least variance
            affine = G.synthesis.input.affine
            affine.weight.zero_()
            affine.weight[2] = PAN_GAIN * u / affine.weight_gain
            affine.bias[2] = -PAN_GAIN * (u @ G.mapping.w_avg)
            for name in G.synthesis.layer_names:
                getattr(G.synthesis, name).affine.weight.mul_(STYLE_SCALE)
            affine.bias[2] += _phase_zero_pan(G)
    return G


@torch.no_grad()
def _phase_zero_pan(G: nn.Module) -> float:
    """The pan (input units) nearest 0 at which G(w_avg) shows phase 0 (phase crossing 0, not pi)."""
    pans = torch.arange(-128, 129) / 256  # +-8 px in 1/16 px
    ws = G.mapping.w_avg.expand(len(pans), G.num_ws, -1).clone()
    ws[:, 0] += pan_offset(G, pans * 16)
    phase = luminance_phase(G.synthesis(ws))
    angle = torch.atan2(phase[:, 1], phase[:, 0])
    crossings = [
        i
        for i in range(len(pans) - 1)
        if (angle[i] >= 0) != (angle[i + 1] >= 0) and (angle[i] - angle[i + 1]).abs() < math.pi / 2
    ]
    if not crossings:
        raise RuntimeError("the toy generator shows no phase 0 within 8 px of w_avg")
    i = min(crossings, key=lambda i: abs(pans[i].item()))
    frac = angle[i] / (angle[i] - angle[i + 1])
    return (pans[i] + frac * (pans[i + 1] - pans[i])).item()


def G_direction(G: nn.Module) -> Tensor:  # noqa: N802
    """Unit direction of w[0] along which the toy generator pans (from its input affine)."""
    row = G.synthesis.input.affine.weight[2]
    return row / row.norm()


def pan_offset(G: nn.Module, pan: Tensor | float) -> Tensor:
    """The change of w[0] [..., w_dim] that pans the toy generator by `pan` pixels."""
    return torch.as_tensor(pan, dtype=torch.float32)[..., None] * G_direction(G) / (16 * PAN_GAIN)


class PanTable:
    """The phase that w_avg's picture shows at each pan of +-8 px (1/16 px apart), to look up the
    pan that shows a phase (`pan_for`)."""

    @torch.no_grad()
    def __init__(self, G: nn.Module):
        self.pans = torch.arange(-128, 129) / 16
        ws = G.mapping.w_avg.expand(len(self.pans), G.num_ws, -1).clone()
        ws[:, 0] += pan_offset(G, self.pans)
        self.phase = luminance_phase(G.synthesis(ws))  # [P, 2]

    def pan_for(self, theta: Tensor) -> Tensor:
        """Pixels to pan by to show phase `theta` [...] (radians; the best match nearest 0)."""
        target = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)  # [..., 2]
        score = target @ self.phase.T - 1e-3 * self.pans.abs()
        return self.pans[score.argmax(dim=-1)]


# ----------------------------------------------------------------------------------------------
# Clips


def draw_events(rng: np.random.Generator, steps: int = STEPS, p: float = 0.5) -> list[int]:
    """Steps that hold a tone burst: each with probability p, at least 3 steps apart, at least one."""
    events: list[int] = []
    for t in range(steps):
        if (not events or t - events[-1] >= 3) and rng.random() < p:
            events.append(t)
    return events or [int(rng.integers(steps))]


def make_sound(rng: np.random.Generator, events: list[int], seconds: float = SECONDS) -> Tensor:
    """Mono waveform [S] at RATE: noise at -70 dBFS and, for each event step, a tone burst (random
    300-1200 Hz, amplitude 0.5, 3 ms attack 0.1 s into the step, 0.12 s decay)."""
    n = round(seconds * RATE)
    step = n // STEPS
    wave = rng.standard_normal(n) * 3e-4
    t = np.arange(n) / RATE
    for e in events:
        start = e * step + round(0.1 * RATE)
        tt = t[start:] - t[start]
        env = np.exp(-tt / 0.12) * (1 - np.exp(-tt / 0.003))
        wave[start:] += 0.5 * env * np.sin(2 * np.pi * rng.uniform(300, 1200) * tt)
    return torch.from_numpy(wave.astype(np.float32))


def frame_angles(wave: Tensor, steps: int = STEPS) -> Tensor:
    """Where the toy's picture points at each of `steps` frames (radians, [steps]): frame t where
    the loudness of segment t - 1 says (frame 0: the whole clip's), as the stand-in F_a reads it."""
    mel_full, mel = clip_mels(wave, MelConfig(n_mels=N_MELS), steps)
    q = torch.cat([loudness(mel_full[None]), loudness(mel[:-1])])
    return KAPPA * (q - Q0)


@torch.no_grad()
def render_clip(G: nn.Module, table: PanTable, w: Tensor, angles: Tensor) -> np.ndarray:
    """uint8 frames [T, R, R, 3] of start latent w [num_ws, w_dim] panned to show `angles` [T]."""
    ws = w.expand(len(angles), -1, -1).clone()
    ws[:, 0] += pan_offset(G, table.pan_for(angles))
    frames = G.synthesis(ws).clamp(-1, 1)
    return ((frames + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """H.264 (lossless, yuv444p) mp4 of uint8 frames [T, H, W, 3] at `fps`."""
    from fractions import Fraction

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0", "g": "1"}  # every frame a keyframe: decoded alone
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


def encode_flac(wave: Tensor) -> bytes:
    """16-bit mono FLAC of a waveform [S] at RATE."""
    buf = io.BytesIO()
    pcm = (wave.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()[None]
    with av.open(buf, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def make_sample(G: nn.Module, table: PanTable, key: str, split: str, seed: int) -> dict[str, bytes]:
    """One toy clip as shard members (`mp4`, `flac`, `json` as in `landscape_av.schema`)."""
    import hashlib

    from model.video_model import start_latents

    rng = np.random.default_rng(seed)
    events = draw_events(rng)
    wave = make_sound(rng, events)
    w = start_latents(G, 1, 0.7, torch.Generator().manual_seed(seed))[0]
    frames = render_clip(G, table, w, frame_angles(wave))
    mp4, flac = encode_mp4(frames, FPS), encode_flac(wave)
    motion = float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean() / 255)
    meta = {
        "key": key, "class": CLASS, "label": 0, "source_id": key, "url": f"toy://{key}",
        "split": split, "clip_index": 0, "start": 0.0, "end": SECONDS, "duration": SECONDS,
        "fps": FPS, "width": frames.shape[2], "height": frames.shape[1],
        "num_frames": len(frames), "sample_rate": RATE, "channels": 1,
        "num_samples": len(wave), "events": events,
        "loudness_db": float(20 * np.log10(wave.square().mean().sqrt().item() + 1e-12)),
        "motion": motion, "license": "CC0-1.0", "attribution": "model.toy_world",
        "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in (("mp4", mp4), ("flac", flac))},
    }  # fmt: skip
    return {"mp4": mp4, "flac": flac, "json": json.dumps(meta, sort_keys=True).encode()}


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    """A WebDataset tar of (key, members) samples, written to a temporary name and renamed."""
    tmp = path.with_name(f".tmp-{path.name}")
    with tarfile.open(tmp, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)


GENERATOR_FILE = "generator.safetensors"


def write_world(out: str | Path, train: int = 64, test: int = 16, seed: int = 0) -> Path:
    """The toy world in folder `out`: `generator.safetensors` and `data/{train,test}-000000.tar`
    (clip i of a split drawn from seed (seed, split, i)); returns `out`."""
    from model.stylegan3.checkpoint import save_generator

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    G = toy_generator()
    save_generator(G, out / GENERATOR_FILE)
    table = PanTable(G)
    for split, n, offset in (("train", train, 0), ("test", test, 1 << 20)):
        keys = [f"toy{split}{i:05d}" for i in range(n)]
        seeds = [seed * (1 << 21) + offset + i for i in range(n)]
        samples = [
            (k, make_sample(G, table, k, split, s)) for k, s in zip(keys, seeds, strict=True)
        ]
        write_shard(out / "data" / f"{split}-000000.tar", samples)
    return out


TRAIN_CONFIG = "train.yaml"
STEPS_TO_TRAIN = 300
"""Optimizer steps of a toy run (`train.yaml`): enough for the walk to follow the sound."""


def train_settings(world: Path) -> dict:
    """`model.train` settings of a toy run on the world in folder `world` (written to its
    `train.yaml`): the `--tiny` sizes, the toy generator and stand-ins, the toy clips' rate."""
    from model.train import TINY_PRESET

    world = Path(world).resolve()
    settings = json.loads(json.dumps(TINY_PRESET))  # a deep copy
    settings["model"]["clip_seconds"] = SECONDS
    settings |= {
        "shards": str(world / "data" / "train-*.tar"),
        "generator": str(world / GENERATOR_FILE),
        "standins": "toy",
        "frames": STEPS,
        "n_mels": N_MELS,
        "steps": STEPS_TO_TRAIN,
        "save_every": STEPS_TO_TRAIN // 3,
        "keep": 0,
        "log_every": 1,
        "image_every": STEPS_TO_TRAIN // 3,
    }
    return settings


@dataclass
class WorldConfig:
    out: str = "toy"
    train: int = 64  # training clips
    test: int = 16  # held-out clips
    seed: int = 0  # seed of the clips (the generator is always the same)


@command(
    "python -m model.toy_world",
    WorldConfig,
    [
        Flag("out", "Folder of the toy world (replaced files: generator, shards, train.yaml)."),
        Flag("train", "Training clips."),
        Flag("test", "Held-out clips."),
        Flag("seed", "Seed of the clips."),
    ],
)
def cli(cfg: WorldConfig) -> None:
    """Write a toy world in which following the sound is the right answer, and its train.yaml."""
    import yaml

    out = write_world(cfg.out, cfg.train, cfg.test, cfg.seed)
    (out / TRAIN_CONFIG).write_text(yaml.safe_dump(train_settings(out), sort_keys=False))
    print(
        f"{out}: {cfg.train} train and {cfg.test} test clips of {SECONDS:g} s, {GENERATOR_FILE}; "
        f"train with: python -m model.train --config {out / TRAIN_CONFIG} --out RUN_DIR"
    )


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
