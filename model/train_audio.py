"""Train F_a, the CLIP-aligned sound encoder, contrastively against a frozen CLIP.

    python -m model.train_audio --shards 'landscape-av/data/train-*.tar' \\
        --clip ViT-B-32.pt --clip-arch ViT-B-32-quickgelu --out runs/sound_clip
    torchrun --nproc-per-node 2 -m model.train_audio ...       # DDP
    python -m model.train_audio --shards ... --tiny --steps 20 --out /tmp/run   # CPU smoke run

Each step: the whole-clip log-mel -> SpecAugment -> F_a; CLIP embeds the clip's frames (mean over
the T frames) and its class prompt (a random template); the loss is `sound_clip_loss`. Checkpoints
(`RUN_DIR/checkpoints/`, resumed automatically), TensorBoard logs (`RUN_DIR/tb`) and the final F_a
(`RUN_DIR/sound_clip/`, read by `model.sound_clip.load_sound_clip`).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn import functional as F

from model import runtime
from model.audio import SpecAugment
from model.clip import WEIGHTS_HELP, FrozenClip, load_clip
from model.data import DataConfig, check_shards, make_loader, prompt_of_label, to_float_frames
from model.sound_clip import SoundClip, SoundClipConfig, save_sound_clip, sound_clip_loss


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m model.train_audio", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--shards", nargs="+", required=True, help="shard paths, globs or brace patterns"
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (resumed when it exists)")
    p.add_argument("--clip", type=Path, default=None, help="local open_clip checkpoint file")
    p.add_argument("--clip-arch", default="ViT-B-32", help="open_clip architecture of --clip")
    p.add_argument(
        "--tiny", action="store_true", help="tiny random CLIP and F_a (tests, smoke runs)"
    )
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip-norm", type=float, default=1.0, help="gradient norm clip (0: off)")
    p.add_argument("--w-text", type=float, default=1.0)
    p.add_argument("--w-image", type=float, default=1.0)
    p.add_argument("--w-audio", type=float, default=0.0, help="audio<->augmented-audio term")
    p.add_argument("--frames", type=int, default=5, help="frames per clip embedded by CLIP")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="loader worker processes per process")
    p.add_argument("--precision", choices=runtime.PRECISIONS, default="bf16")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.clip is None and not args.tiny:
        p.error(f"--clip CKPT is required unless --tiny. {WEIGHTS_HELP}")
    return args


def image_embedding(clip: FrozenClip, frames: torch.Tensor) -> torch.Tensor:
    """frames [B, T, 3, R, R] in [-1, 1] -> [B, D]: mean of the T frame embeddings, renormalised."""
    b, t = frames.shape[:2]
    with torch.no_grad():
        emb = clip.encode_image(frames.flatten(0, 1)).float().view(b, t, -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def train(args: argparse.Namespace) -> Path:
    """Run (or resume) training; returns the folder of the final F_a."""
    rt = runtime.setup(args.device, seed=args.seed)
    clip = load_clip(args.clip, args.clip_arch, tiny=args.tiny).to(rt.device)
    weights = {"w_text": args.w_text, "w_image": args.w_image, "w_audio": args.w_audio}
    cfg = (SoundClipConfig.tiny if args.tiny else SoundClipConfig)(clip.embed_dim, **weights)
    model = SoundClip(cfg)
    ddp = rt.wrap(model)
    dcfg = DataConfig(frames=args.frames, resolution=args.resolution, n_mels=args.n_mels)
    check_shards(args.shards, dcfg)
    augment = SpecAugment(freq_width=max(1, args.n_mels // 8), time_width=64).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    amp = runtime.Precision(rt, args.precision)
    ckpt = runtime.Checkpointer(args.out)
    state = ckpt.load_latest({"sound_clip": model}, {"opt": opt}, amp.scaler)
    start = state["step"] if state else 0
    batches = iter(  # endless; a resumed run starts a fresh shard order (pass number = step)
        make_loader(
            args.shards,
            dcfg,
            args.batch_size,
            args.workers,
            seed=args.seed,
            epoch=start,
            epochs=None,
            pin_memory=rt.device.type == "cuda",
        )
    )
    text_rng = random.Random(args.seed * 1009 + rt.rank + start)
    writer = runtime.summary_writer(args.out, rt)
    config = {"args": vars(args), "sound_clip": asdict(cfg), "data": asdict(dcfg)}
    step = start
    with runtime.progress(args.steps, rt, args.quiet, start, "F_a") as bar:
        for step in range(start + 1, args.steps + 1):
            batch = next(batches)
            mel = batch["mel_full"].to(rt.device, non_blocking=True)  # [B, 1, M, L]
            labels = batch["label"].to(rt.device)
            frames = to_float_frames(batch["frames"].to(rt.device, non_blocking=True))
            image = image_embedding(clip, frames)
            text = clip.encode_text([prompt_of_label(int(y), text_rng) for y in labels])
            with amp.autocast():
                views = [augment(mel)] + ([augment(mel)] if cfg.w_audio > 0 else [])
                audio = ddp(torch.cat(views)).float().chunk(len(views))  # one DDP forward
                losses = sound_clip_loss(
                    model, audio[0], text, image, labels, audio[1] if cfg.w_audio > 0 else None
                )
            amp.backward(losses["total"])
            amp.step(opt, args.clip_norm or None)
            if step % args.log_every == 0 or step == args.steps:
                logged = {k: rt.mean(v).item() for k, v in losses.items()}
                logged["logit_scale"] = model.scale().item()
                if writer is not None:
                    for name, value in logged.items():
                        writer.add_scalar(f"sound_clip/{name}", value, step)
                bar.advance(f"loss {logged['total']:.4f}")
            else:
                bar.advance()
            if step % args.save_every == 0:
                ckpt.save(step, {"sound_clip": model}, {"opt": opt}, amp.scaler, rt, config)
    if step > start and step % args.save_every != 0:
        ckpt.save(step, {"sound_clip": model}, {"opt": opt}, amp.scaler, rt, config)
    final = args.out / "sound_clip"
    if rt.is_main:
        save_sound_clip(model, final)
        runtime.rank_zero_print(rt, f"F_a written to {final}")
    if writer is not None:
        writer.close()
    rt.close()
    return final


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
