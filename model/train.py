"""Train the sound-guided video model: `python -m model.train --shards ... --out RUN_DIR`.

One optimizer step = `accum` micro-batches; each micro-batch does

    G side: w ~ mapping(z, psi) ; (w_hat, ws) = SoundToLatents(mel_full, mel, w) ;
            images = G.synthesis([w_hat ; ws])           -> G(w_hat) and the T walked frames
            L_G = clip_audio (eq. 2) + clip_text + temporal (eq. 3) + latent + adv_image + adv_video
    D side: L_D = GAN(D_I(real frames), D_I(fake frames)) + GAN(D_V(real clip), D_V(fake clip))

clip_audio compares G(w_hat) with F_a of the whole clip and each walked frame with F_a of its own
audio segment, so the per-step sound has a target. Loss weights and the GAN loss follow
`weights.preset` (`paper` or `authors-code`, see `model.losses.PRESETS`); `ablation` switches off
parts as in the paper's ablations (`ABLATIONS`). T = `frames` per clip and the model's rate
`model.fps` (frames per second of sound) determine each other through `clip_seconds`.

(the discriminators are frozen during the G side; fakes are detached for the D side). The frozen
StyleGAN3 generator, CLIP and sound-CLIP F_a come from local files (`--generator`, `--clip`,
`--sound-clip`); `--tiny` builds tiny random ones instead, for a CPU run on the offline corpus.

Settings (`TrainConfig`): defaults < `--tiny` preset < `--config FILE` < flags < `--set key.sub=value`
(`model.config`). Runs resume from the newest checkpoint in `--out` and reproduce the uninterrupted
run (`model.runtime.Checkpointer`).
Multi-GPU: `torchrun --nproc_per_node N -m model.train ...` (DDP; `batch_size` is per process).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from model import runtime
from model.clip import WEIGHTS_HELP, load_clip
from model.config import (
    Flag,
    InputError,
    Preset,
    UsageError,
    apply_overrides,
    check_ranges,
    command,
    run,
)
from model.data import DataConfig, check_shards, to_float_frames, training_batches
from model.discriminators import DiscriminatorConfig, ImageDiscriminator, VideoDiscriminator
from model.losses import (
    LossWeights,
    clip_audio_loss,
    clip_text_loss,
    d_loss,
    g_loss,
    latent_loss,
    temporal_loss,
)
from model.video_model import (
    SoundToLatents,
    VideoModelConfig,
    freeze,
    latent_spread,
    render,
    start_latents,
)

GENERATOR_HELP = (
    "an official StyleGAN3 snapshot (.pkl) or a model.stylegan3 checkpoint; the paper uses a "
    "StyleGAN3-T trained on LHQ at 256x256 ('lhq-256'); NVIDIA's stylegan3-t-*.pkl snapshots come "
    "from https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/stylegan3"
)
CLIP_HELP = "an open_clip checkpoint of --clip-arch. " + WEIGHTS_HELP
SOUND_CLIP_HELP = (
    "the sound-CLIP audio encoder F_a trained by `python -m model.train_audio` (its run folder or "
    "checkpoint)"
)


@dataclass
class TrainConfig:
    shards: str = ""  # brace pattern / glob of training shards
    out: str = "runs/video"
    generator: str | None = None
    clip: str | None = None
    clip_arch: str = "ViT-B-32"
    sound_clip: str | None = None
    tiny: bool = False  # tiny random generator / CLIP / F_a: a CPU run on the offline corpus
    device: str = "auto"
    precision: str = "bf16"  # fp32 | bf16 | fp16 (CUDA only; CPU always runs fp32)
    seed: int = 0
    steps: int = 100_000  # optimizer steps
    batch_size: int = 1  # per process (the authors' code: 1 per GPU on 2 GPUs)
    accum: int = 1  # micro-batches per optimizer step
    frames: int | None = None  # T per clip; None: model.fps x clip_seconds (the paper: 10)
    clip_seconds: float = 10.0  # length of the corpus clips (landscape-av: 10 s)
    ablation: str = ""  # comma list of ABLATIONS names, e.g. "no-sound,no-clip"
    n_mels: int = 128
    workers: int = 4  # loader worker processes per process
    lr_encoder: float = 5e-4
    lr_walker: float = 1e-4
    lr_disc: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = None  # gradient norm clip (None or 0: off)
    save_every: int = 1000  # checkpoint every N steps and at the last
    keep: int = 3  # checkpoints kept
    log_every: int = 50
    image_every: int = 1000
    quiet: bool = False
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    weights: LossWeights = field(default_factory=LossWeights)


TINY_GENERATOR = dict(
    z_dim=32,
    c_dim=0,
    w_dim=32,
    img_resolution=16,
    img_channels=3,
    channel_base=256,
    channel_max=32,
    mapping_kwargs={"num_layers": 2},
)
"""Constructor arguments of the tiny random StyleGAN3 of `--tiny`."""

TINY_PRESET: dict[str, Any] = {
    "tiny": True,
    "device": "cpu",
    "precision": "fp32",
    "steps": 10,
    "batch_size": 1,
    "frames": 3,
    "n_mels": 32,
    "workers": 0,
    "save_every": 10,
    "log_every": 5,
    "image_every": 10,
    "model": {
        "encoder": {"in_size": 32, "width": 8, "depth": [1, 1, 1, 1]},
        "walker": {"hidden": 32, "audio_dim": 32, "noise_dim": 32},
    },
    "disc": {"ndf": 8, "n_layers": 2},
}


# ----------------------------------------------------------------------------------------------
# Command line


FLAGS = [
    Flag(
        "shards",
        "Training shards: a brace pattern or glob, e.g. "
        "'landscape-av/data/train-{000000..000009}.tar'.",
        required=True,
    ),
    Flag("out", "Run folder (checkpoints/, tb/, samples/); resumed when it holds checkpoints."),
    Flag("generator", GENERATOR_HELP, exists=True),
    Flag("clip", CLIP_HELP, exists=True),
    Flag("clip_arch", "open_clip architecture of --clip."),
    Flag("sound_clip", SOUND_CLIP_HELP, exists=True),
    Flag("batch_size", "Clips per process and micro-batch."),
    Flag("accum", "Gradient accumulation: micro-batches per optimizer step."),
    Flag("frames", "Frames T per clip."),
    Flag("n_mels", "Mel bands."),
    Flag("model.truncation", "psi of the random start latent."),
    Flag("image_every", "Log a grid of real and fake frames every N steps."),
    *runtime.RUN_FLAGS,
]


@command(
    "python -m model.train",
    TrainConfig,
    FLAGS,
    {"tiny": Preset("Tiny random models on CPU, 10 steps (a smoke run).", TINY_PRESET)},
)
def cli(cfg: TrainConfig) -> None:
    """Train the sound-guided video model (or resume its run folder)."""
    train(cfg)


build_config = cli.settings
"""The TrainConfig of a command line, without training."""


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


RUN_RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, 2**63 - 1),
    "frames": (1, 1000),
    "clip_seconds": (0.1, 3600),
    "n_mels": (1, 512),
}
"""(lowest, highest) of the settings of a run's config.json that size what loading it builds
(`model`'s are `video_model.RANGES`, `generator_kwargs`' the generator's `BOUNDS`)."""


def read_run_config(folder: str | Path) -> dict[str, Any]:
    """The `config.json` of a checkpoint folder of this trainer (`Trainer.save` writes it), checked
    before anything is built from it, since anyone may have written it: bounded JSON, every
    setting typed as `TrainConfig`'s (unknown ones refused) and within `RUN_RANGES`, `model`
    within `VideoModelConfig.from_dict`'s bounds, `generator_kwargs` within the generator's
    (`check_config`), and the two agreeing on num_ws and w_dim. ValueError naming the file and
    the setting; returns the config as `Trainer.save` writes it."""
    from model.stylegan3.checkpoint import check_config

    where = f"{folder}/config.json"
    raw = runtime.read_config(folder)
    kwargs = check_config(raw.get("generator_kwargs"), f"{where}: generator_kwargs")
    cfg = TrainConfig()
    apply_overrides(cfg, {k: v for k, v in raw.items() if k != "generator_kwargs"}, where)
    check_ranges(cfg, RUN_RANGES, where)
    model = VideoModelConfig.from_dict(config_dict(cfg)["model"], f"{where}: model")
    num_ws = kwargs.get("num_layers", 14) + 2  # the generator's ws: one per synthesis layer + 2
    for part in (model.encoder, model.walker):
        if (part.num_ws, part.w_dim) != (num_ws, kwargs["w_dim"]):
            raise ValueError(
                f"{where}: model num_ws={part.num_ws}, w_dim={part.w_dim} differ from the "
                f"generator's {num_ws}, {kwargs['w_dim']}"
            )
    return config_dict(cfg) | {"generator_kwargs": kwargs}


# ----------------------------------------------------------------------------------------------
# Frozen parts: StyleGAN3 generator, CLIP, sound-CLIP


@dataclass
class Frozen:
    G: nn.Module
    clip: nn.Module
    sound_clip: nn.Module
    generator_kwargs: dict[str, Any]


def load_frozen(cfg: TrainConfig, device: torch.device) -> Frozen:
    """The frozen models, from local files or (with `tiny`) random tiny ones seeded by `cfg.seed`."""
    from model.sound_clip import SoundClip, SoundClipConfig, load_sound_clip
    from model.stylegan3 import Generator

    if cfg.tiny:
        torch.manual_seed(cfg.seed)
        G = Generator(**TINY_GENERATOR)
        kwargs = dict(TINY_GENERATOR)
        clip = load_clip(None, tiny=True, seed=cfg.seed)
        sound_clip = SoundClip(SoundClipConfig.tiny(embed_dim=clip.embed_dim))
    else:
        missing = [
            f"--{name} ({why})"
            for name, value, why in (
                ("generator", cfg.generator, GENERATOR_HELP),
                ("clip", cfg.clip, CLIP_HELP),
                ("sound-clip", cfg.sound_clip, SOUND_CLIP_HELP),
            )
            if not value
        ]
        if missing:
            raise UsageError(
                "pretrained weights are read from local files; missing "
                + "; ".join(missing)
                + "; or pass --tiny for a random tiny run on CPU"
            )
        from model.stylegan3 import load_generator

        try:
            G = load_generator(cfg.generator)
            sound_clip = load_sound_clip(cfg.sound_clip)
        except ValueError as e:  # a file out of bounds, damaged or of another kind
            raise InputError(str(e)) from e
        kwargs = G.init_kwargs
        clip = load_clip(cfg.clip, arch=cfg.clip_arch)
        if sound_clip.cfg.embed_dim != clip.embed_dim:
            raise InputError(
                f"--sound-clip {cfg.sound_clip} embeds into {sound_clip.cfg.embed_dim} dims but "
                f"--clip {cfg.clip} ({cfg.clip_arch}) into {clip.embed_dim}: train F_a with this CLIP"
            )
    return Frozen(
        freeze(G.to(device)), freeze(clip.to(device)), freeze(sound_clip.to(device)), kwargs
    )


DEFAULT_FPS = 1.0
"""The paper's rate: 10 frames per 10 s clip."""
RADIUS_FRACTION = 0.5
"""Default walk bound (`WalkerConfig.radius`) as a fraction of the generator's latent spread."""

ABLATIONS: dict[str, str] = {
    "no-sound": "E_a and the walker hear silence (model.sound = false)",
    "single-block": "one recurrent block walks all ws (model.walker.single_block = true)",
    "no-clip": "no CLIP terms (weights.clip_audio = weights.clip_text = 0)",
}
"""The paper's ablations, by name (`TrainConfig.ablation`), and the settings each one makes."""


def resolve_config(cfg: TrainConfig, G: nn.Module) -> None:
    """Fill in what follows from the generator, the rate, the loss preset and the ablations (in place,
    idempotent, so the saved config holds the values the run used). ValueError on a conflict."""
    for sub in (cfg.model.encoder, cfg.model.walker):
        sub.num_ws, sub.w_dim = G.num_ws, G.w_dim
    if cfg.frames is None:
        cfg.model.fps = cfg.model.fps or DEFAULT_FPS
        cfg.frames = max(1, round(cfg.model.fps * cfg.clip_seconds))
    elif cfg.model.fps is None:
        cfg.model.fps = cfg.frames / cfg.clip_seconds
    elif round(cfg.model.fps * cfg.clip_seconds) != cfg.frames:
        raise ValueError(
            f"frames {cfg.frames} and model.fps {cfg.model.fps:g} disagree for "
            f"{cfg.clip_seconds:g} s clips: set one of them"
        )
    if cfg.model.walker.radius is None:
        cfg.model.walker.radius = RADIUS_FRACTION * latent_spread(G)
    cfg.weights = cfg.weights.resolved()
    for name in filter(None, (n.strip() for n in cfg.ablation.split(","))):
        if name == "no-sound":
            cfg.model.sound = False
        elif name == "single-block":
            cfg.model.walker.single_block = True
        elif name == "no-clip":
            cfg.weights.clip_audio = cfg.weights.clip_text = 0.0
        else:
            raise ValueError(f"unknown ablation {name!r}; expected any of: {', '.join(ABLATIONS)}")


# ----------------------------------------------------------------------------------------------
# The training step


class Trainer:
    """Trainable modules, optimizers and one optimizer step (`step(micro_batches)`)."""

    def __init__(self, cfg: TrainConfig, rt: runtime.Runtime, frozen: Frozen):
        self.cfg, self.rt, self.frozen = cfg, rt, frozen
        resolve_config(cfg, frozen.G)
        torch.manual_seed(cfg.seed + 1)
        self.latents = rt.wrap(SoundToLatents(cfg.model))
        self.d_image = rt.wrap(ImageDiscriminator(cfg.disc))
        self.d_video = rt.wrap(VideoDiscriminator(cfg.disc))
        core = runtime.unwrap(self.latents)
        self.opt_g = torch.optim.AdamW(
            [
                {"params": core.encoder.parameters(), "lr": cfg.lr_encoder},
                {"params": core.walker.parameters(), "lr": cfg.lr_walker},
            ],
            betas=cfg.betas,
        )
        d_params = [*self.d_image.parameters(), *self.d_video.parameters()]
        self.opt_d = torch.optim.AdamW(d_params, lr=cfg.lr_disc, betas=cfg.betas)
        self.amp = runtime.Precision(rt, cfg.precision)
        self.last_images: torch.Tensor | None = None  # [2, T, 3, R, R]: real and fake of sample 0

    def modules(self) -> dict[str, nn.Module]:
        """What a checkpoint stores (the frozen generator too, so generation needs nothing else)."""
        return {
            "latents": self.latents,
            "d_image": self.d_image,
            "d_video": self.d_video,
            "generator": self.frozen.G,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def save(self, ckpt: runtime.Checkpointer, step: int) -> Path | None:
        """A checkpoint of everything `model.generate` and a resumed run need."""
        config = config_dict(self.cfg) | {"generator_kwargs": self.frozen.generator_kwargs}
        return ckpt.save(
            step, self.modules(), self.optimizers(), self.amp.scaler, self.rt, config=config
        )

    def _set_d_grad(self, flag: bool) -> None:
        for p in [*self.d_image.parameters(), *self.d_video.parameters()]:
            p.requires_grad_(flag)

    def micro_step(self, batch: dict[str, Any], scale: float) -> dict[str, float]:
        """Forward and backward of one micro-batch (losses scaled by `scale`); returns loss values."""
        cfg, dev, w8 = self.cfg, self.rt.device, self.cfg.weights
        G, clip = self.frozen.G, self.frozen.clip
        real = to_float_frames(batch["frames"].to(dev, non_blocking=True))  # [B, T, 3, R, R]
        mel, mel_full = batch["mel"].to(dev), batch["mel_full"].to(dev)
        B, T = real.shape[:2]
        w = start_latents(G, B, cfg.model.truncation)  # [B, N, D]

        # ---- G side (discriminators frozen, called without their DDP wrappers)
        self._set_d_grad(False)
        with self.amp.autocast():
            w_hat, ws = self.latents(mel_full, mel, w)  # [B, N, D], [B, T, N, D]
        images = render(G, torch.cat([w_hat[:, None], ws], dim=1))  # [B, T+1, 3, R, R]
        fake = images[:, 1:]
        terms: dict[str, torch.Tensor] = {}
        with self.amp.autocast():
            img_emb = clip.encode_image(images.flatten(0, 1)).float()  # [B*(T+1), E]
            with torch.no_grad():  # F_a of the whole clip for G(w_hat), of segment t for frame t
                whole = self.frozen.sound_clip(mel_full).float()[:, None]  # [B, 1, E]
                steps = self.frozen.sound_clip(mel.flatten(0, 1)).float().view(B, T, -1)
            terms["clip_audio"] = clip_audio_loss(
                img_emb, torch.cat([whole, steps], 1).flatten(0, 1)
            )
            if w8.clip_text:
                text = clip.encode_text(batch["prompt"]).repeat_interleave(T + 1, dim=0)
                terms["clip_text"] = clip_text_loss(img_emb, text)
            terms["temporal"] = temporal_loss(ws.float())
            terms["latent"] = latent_loss(ws.float(), w)
            if w8.adv_image:
                d_fake = runtime.unwrap(self.d_image)(fake.flatten(0, 1))
                terms["adv_image"] = g_loss(d_fake, w8.gan)
            if w8.adv_video:
                terms["adv_video"] = g_loss(runtime.unwrap(self.d_video)(fake), w8.gan)
            loss_g = sum(getattr(w8, k) * v.float() for k, v in terms.items())
        self.amp.backward(loss_g * scale)
        self._set_d_grad(True)

        # ---- D side (real and detached fake in one forward per discriminator)
        logs = {k: v.item() for k, v in terms.items()} | {"g_total": loss_g.item()}
        if w8.adv_image or w8.adv_video:
            both = torch.cat([real, fake.detach()])  # [2B, T, 3, R, R]
            with self.amp.autocast():
                s_img = self.d_image(both.flatten(0, 1)).float().chunk(2)
                s_vid = [s.float().chunk(2) for s in self.d_video(both)]
                d_img = d_loss(s_img[0], s_img[1], w8.gan)
                d_vid = d_loss([s[0] for s in s_vid], [s[1] for s in s_vid], w8.gan)
                loss_d = w8.adv_image * d_img + w8.adv_video * d_vid
            self.amp.backward(loss_d * scale)
            logs |= {"d_image": d_img.item(), "d_video": d_vid.item(), "d_total": loss_d.item()}
        self.last_images = torch.stack([real[0], fake[0].detach()]).float().cpu()
        return logs

    def step(self, batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step over `len(batches)` micro-batches; returns mean loss values."""
        totals: dict[str, float] = {}
        mods = [self.latents, self.d_image, self.d_video]
        for (_, sync), batch in zip(runtime.micro_steps(mods, len(batches)), batches, strict=True):
            with sync:
                logs = self.micro_step(batch, 1.0 / len(batches))
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v / len(batches)
        opts = [self.opt_g, self.opt_d] if "d_total" in totals else [self.opt_g]
        self.amp.step(opts, self.cfg.clip_grad or None)
        return totals


# ----------------------------------------------------------------------------------------------
# The loop


def log_step(writer, trainer: Trainer, step: int, logs: dict[str, float], run: Path) -> None:
    cfg = trainer.cfg
    if writer is None:
        return
    if step % cfg.log_every == 0 or step == cfg.steps:
        for k, v in logs.items():
            writer.add_scalar(f"loss/{k}", v, step)
    if (step % cfg.image_every == 0 or step == cfg.steps) and trainer.last_images is not None:
        imgs = trainer.last_images  # [2, T, 3, R, R]: real row, fake row
        grid = make_grid(
            imgs.flatten(0, 1), nrow=imgs.shape[1], normalize=True, value_range=(-1, 1)
        )
        writer.add_image("samples/real_top_fake_bottom", grid, step)
        (run / "samples").mkdir(exist_ok=True)
        save_image(grid, run / "samples" / f"step-{step:08d}.png")
    writer.flush()


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run (or resume) training to `cfg.steps`; returns the last step's loss values."""
    rt = runtime.setup(cfg.device, seed=cfg.seed)
    run = Path(cfg.out)
    try:
        frozen = load_frozen(cfg, rt.device)
        trainer = Trainer(cfg, rt, frozen)
        ckpt = runtime.Checkpointer(run, keep=cfg.keep, every=cfg.save_every)
        step = ckpt.resume(trainer.modules(), trainer.optimizers(), trainer.amp.scaler, rt)
        data = DataConfig(frames=cfg.frames, resolution=frozen.G.img_resolution, n_mels=cfg.n_mels)
        check_shards(cfg.shards, data)
        stream = training_batches(
            cfg.shards, data, cfg.batch_size, cfg.workers, cfg.seed, step * cfg.accum,
            rt.device.type == "cuda",
        )  # fmt: skip
        writer = runtime.summary_writer(run, rt)
        logs: dict[str, float] = {}
        with runtime.progress(cfg.steps, rt, cfg.quiet, start=step) as bar:
            while step < cfg.steps:
                runtime.seed_step(cfg.seed, step, rt)
                logs = trainer.step([next(stream) for _ in range(cfg.accum)])
                if not all(math.isfinite(v) for v in logs.values()):
                    raise FloatingPointError(f"step {step}: non-finite loss {logs}")
                step += 1
                log_step(writer, trainer, step, logs, run)
                bar.advance(f"G {logs['g_total']:.3f} D {logs.get('d_total', 0.0):.3f}")
                if ckpt.due(step, cfg.steps):
                    trainer.save(ckpt, step)
        runtime.assert_in_sync(trainer.modules(), rt)
        if writer is not None:
            writer.close()
        runtime.rank_zero_print(rt, json.dumps({"step": step, "losses": logs}))
        return logs
    finally:
        rt.close()


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
