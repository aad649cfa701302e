"""Train F_a, the CLIP-aligned sound encoder, contrastively against a frozen CLIP.

    python -m model.train_audio --shards 'landscape-av/data/train-*.tar' \\
        --clip ViT-B-32.pt --clip-arch ViT-B-32-quickgelu --out runs/sound_clip
    torchrun --nproc-per-node 2 -m model.train_audio ...       # DDP
    python -m model.train_audio --shards ... --tiny --out /tmp/run   # CPU smoke run

Each step: the whole-clip log-mel -> SpecAugment -> F_a; CLIP embeds the clip's frames (mean over
the T frames) and its class prompt (a random template); the loss is `sound_clip_loss`, whose text
term counts clips of one class as positives. The classes are the shards' own (each sample's json):
the paper trains F_a on VGGSound (§4.1), whose shards `landscape-av sources vggsound` and
`landscape-av build --any-class` make; the Landscape shards are the quick option. Settings
(`AudioTrainConfig`) and resume follow `model.train`: checkpoints in `RUN_DIR/checkpoints/` (a
killed run resumes from the newest and reproduces the uninterrupted one), TensorBoard logs in
`RUN_DIR/tb`, and the final F_a in `RUN_DIR/sound_clip/` (read by `load_sound_clip`).
"""

from __future__ import annotations

import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from model import runtime
from model.audio import SpecAugment
from model.clip import WEIGHTS_HELP, FrozenClip, load_clip
from model.config import Flag, Preset, UsageError, command, run
from model.data import DataConfig, check_shards, prompt_of, to_float_frames, training_batches
from model.sound_clip import SoundClip, SoundClipConfig, save_sound_clip, sound_clip_loss


@dataclass
class AudioTrainConfig:
    shards: str = ""  # brace pattern / glob of training shards
    out: str = "runs/sound_clip"
    clip: str | None = None  # local open_clip checkpoint
    clip_arch: str = "ViT-B-32"
    tiny: bool = False  # tiny random CLIP and F_a: a CPU run on the offline corpus
    device: str = "auto"
    precision: str = "bf16"  # fp32 | bf16 | fp16 (CUDA only; CPU always runs fp32)
    seed: int = 0
    steps: int = 20_000
    batch_size: int = 32  # per process
    lr: float = 1e-4
    weight_decay: float = 0.01
    clip_grad: float | None = 1.0  # gradient norm clip (None: off)
    frames: int = 5  # frames per clip embedded by CLIP
    resolution: int = 256
    n_mels: int = 128
    workers: int = 2  # loader worker processes per process
    save_every: int = 1000  # checkpoint every N steps and at the last
    keep: int = 3  # checkpoints kept
    log_every: int = 10
    quiet: bool = False
    sound_clip: SoundClipConfig = field(default_factory=SoundClipConfig)  # embed_dim: CLIP's


TINY_PRESET: dict[str, Any] = {
    "tiny": True,
    "device": "cpu",
    "precision": "fp32",
    "steps": 20,
    "batch_size": 2,
    "frames": 2,
    "resolution": 32,
    "n_mels": 32,
    "workers": 0,
    "save_every": 10,
    "log_every": 5,
    "sound_clip": {"blocks": [1, 1, 1, 1]},
}

FLAGS = [
    Flag("shards", "Training shards: a brace pattern or glob.", required=True),
    Flag("out", "Run folder (checkpoints/, tb/, sound_clip/); resumed when it holds checkpoints."),
    Flag("clip", "Local open_clip checkpoint of --clip-arch.", exists=True),
    Flag("clip_arch", "open_clip architecture of --clip."),
    Flag("batch_size", "Clips per process."),
    Flag("lr", "AdamW learning rate."),
    Flag("weight_decay", "AdamW weight decay."),
    Flag("sound_clip.w_text", "Weight of the audio<->text term."),
    Flag("sound_clip.w_image", "Weight of the audio<->image term."),
    Flag("sound_clip.w_audio", "Weight of the audio<->augmented-audio term."),
    Flag("frames", "Frames per clip embedded by CLIP."),
    Flag("resolution", "Frame size (px) given to CLIP."),
    Flag("n_mels", "Mel bands."),
    *runtime.RUN_FLAGS,
]


@command(
    "python -m model.train_audio",
    AudioTrainConfig,
    FLAGS,
    {"tiny": Preset("Tiny random CLIP and F_a on CPU, 20 steps (a smoke run).", TINY_PRESET)},
)
def cli(cfg: AudioTrainConfig) -> None:
    """Train F_a, the CLIP-aligned sound encoder (or resume its run folder)."""
    train(cfg)


def image_embedding(clip: FrozenClip, frames: torch.Tensor) -> torch.Tensor:
    """frames [B, T, 3, R, R] in [-1, 1] -> [B, D]: mean of the T frame embeddings, renormalised."""
    b, t = frames.shape[:2]
    with torch.no_grad():
        emb = clip.encode_image(frames.flatten(0, 1)).float().view(b, t, -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def class_ids(names: list[str]) -> torch.Tensor:
    """[B] ids equal exactly where the class names are (the text term's positives), whatever the
    corpus's label numbering: shards of corpora with other class lists mix safely."""
    return torch.tensor([names.index(name) for name in names], dtype=torch.long)


def train(cfg: AudioTrainConfig) -> Path:
    """Run (or resume) training to `cfg.steps`; returns the folder of the final F_a."""
    if cfg.clip is None and not cfg.tiny:
        raise UsageError(f"--clip CKPT is required unless --tiny. {WEIGHTS_HELP}")
    rt = runtime.setup(cfg.device, seed=cfg.seed)
    clip = load_clip(cfg.clip, cfg.clip_arch, tiny=cfg.tiny, seed=cfg.seed).to(rt.device)
    cfg.sound_clip.embed_dim = clip.embed_dim
    model = SoundClip(cfg.sound_clip)
    ddp = rt.wrap(model)
    dcfg = DataConfig(frames=cfg.frames, resolution=cfg.resolution, n_mels=cfg.n_mels)
    check_shards(cfg.shards, dcfg)
    augment = SpecAugment(freq_width=max(1, cfg.n_mels // 8), time_width=64).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = runtime.Precision(rt, cfg.precision)
    ckpt = runtime.Checkpointer(cfg.out, keep=cfg.keep, every=cfg.save_every)
    modules, optimizers = {"sound_clip": model}, {"opt": opt}
    step = ckpt.resume(modules, optimizers, amp.scaler, rt)
    batches = training_batches(
        cfg.shards, dcfg, cfg.batch_size, cfg.workers, cfg.seed, step, rt.device.type == "cuda"
    )
    writer = runtime.summary_writer(cfg.out, rt)
    with runtime.progress(cfg.steps, rt, cfg.quiet, step, "F_a") as bar:
        while step < cfg.steps:
            runtime.seed_step(cfg.seed, step, rt)
            text_rng = random.Random(runtime.step_seed(cfg.seed, step) + rt.rank)
            batch = next(batches)
            mel = batch["mel_full"].to(rt.device, non_blocking=True)  # [B, 1, M, L]
            names = batch["class"]
            labels = class_ids(names).to(rt.device)
            frames = to_float_frames(batch["frames"].to(rt.device, non_blocking=True))
            image = image_embedding(clip, frames)
            text = clip.encode_text([prompt_of(name, text_rng) for name in names])
            w_audio = cfg.sound_clip.w_audio > 0
            with amp.autocast():
                views = [augment(mel)] + ([augment(mel)] if w_audio else [])
                audio = ddp(torch.cat(views)).float().chunk(len(views))  # one DDP forward
                losses = sound_clip_loss(
                    model, audio[0], text, image, labels, audio[1] if w_audio else None
                )
            amp.backward(losses["total"])
            amp.step(opt, cfg.clip_grad or None)
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                logged = {k: rt.mean(v).item() for k, v in losses.items()}
                logged["logit_scale"] = model.scale().item()
                if writer is not None:
                    for name, value in logged.items():
                        writer.add_scalar(f"sound_clip/{name}", value, step)
                bar.advance(f"loss {logged['total']:.4f}")
            else:
                bar.advance()
            if ckpt.due(step, cfg.steps):
                config = asdict(cfg) | {"data": asdict(dcfg)}
                ckpt.save(step, modules, optimizers, amp.scaler, rt, config)
    final = Path(cfg.out) / "sound_clip"
    if rt.is_main:
        save_sound_clip(model, final)
        runtime.rank_zero_print(rt, f"F_a written to {final}")
    if writer is not None:
        writer.close()
    rt.close()
    return final


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
