"""The one way `model` reads a landscape-av corpus: WebDataset shards -> training batches.

Per sample (a 10 s clip, members per `landscape_av.schema`): T frames at the starts of T equal
time steps, decoded sparsely from the `mp4` (only the packets from each needed frame's keyframe on,
never the whole clip), resized (short side) and centre-cropped to the model resolution; the `flac`
audio as whole-clip and per-step log-mels (`model.audio.clip_mels`, step t covers
[t*D/T, (t+1)*D/T), from one STFT); the class label and its text prompt.

A batch (B samples, T = `DataConfig.frames`, R = `resolution`, M = `n_mels`)::

    frames    [B, T, R, R, 3]  uint8 (`to_float_frames` on the device: float32 [B, T, 3, R, R])
    mel       [B, T, 1, M, S]  float32 in [0, 1], S = (N // T) // hop       (N audio samples)
    mel_full  [B, 1, M, L]     float32 in [0, 1], L = 1 + N // hop          (862 for 10 s, 44.1 kHz)
    label     [B]              int64 index into the corpus's classes (`Corpus.classes`)
    class     list[str]        class names (the sample json's `class`)
    prompt    list[str]        `prompt_for(class)`
    key       list[str]        sample keys

Shards are split by DDP rank (`split_by_node`) and by loader worker (`split_by_worker`); the shard
order and the sample shuffle buffer follow (seed, epoch), so a run is reproducible.

Prepared shards (`python -m model.prepare`) hold these items already decoded at one DataConfig
(`PREPARED_MEMBERS`); the loader reads them, and corpus shards, alike and gives the same batches.
"""

from __future__ import annotations

import functools
import glob
import io
import itertools
import json
import math
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import braceexpand
import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch import Tensor

from landscape_av.corpus.corpus import read_shard, shard_keys
from landscape_av.corpus.decode import frames_at_times
from landscape_av.corpus.tar_reader import ShardUnreadable, read_samples, shown
from landscape_av.schema import MEMBERS, SampleMeta
from model import runtime
from model.audio import MelConfig, clip_mels, fit_length, load_wave, step_mels
from model.config import InputError

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a video of {}.",
    "the sound of {}.",
    "a landscape with {}.",
    "{}",
)
"""Text prompts of a class; the first is the canonical one put in batches, the others augment."""

USED_MEMBERS = tuple(m for m in MEMBERS if m != "jpg")
"""Corpus shard members the loader reads: mp4, flac, json (the `jpg` thumbnail is skipped)."""


def prompt_for(class_name: str, template: int = 0) -> str:
    """Text prompt of a class: `prompt_for("raining") == "a photo of raining."`."""
    return PROMPT_TEMPLATES[template].format(class_name)


def prompt_of(class_name: str, rng: random.Random | None = None) -> str:
    """Prompt of a class: the canonical template, or a random one when `rng` is given."""
    template = 0 if rng is None else rng.randrange(len(PROMPT_TEMPLATES))
    return prompt_for(class_name, template)


@dataclass(frozen=True)
class DataConfig:
    frames: int = 10  # T: frames (and audio steps) per clip
    resolution: int = 256  # R: square frame size
    sample_rate: int = 44100
    n_mels: int = 128
    n_fft: int = 2048
    hop: int = 512
    shuffle_buffer: int = 256  # samples held by each worker's shuffle buffer (0: no shuffle)

    @property
    def mel(self) -> MelConfig:
        return MelConfig(self.sample_rate, self.n_fft, self.hop, self.n_mels)


# ----------------------------------------------------------------------------------------------
# Shard lists


def expand_shards(shards: str | Path | Sequence[str | Path]) -> list[str]:
    """Shard paths of brace patterns (`data/train-{000000..000003}.tar`), globs, or lists of either.

    Raises FileNotFoundError naming the pattern when one matches nothing.
    """
    items = [shards] if isinstance(shards, str | Path) else list(shards)
    urls: list[str] = []
    for item in items:
        for pattern in braceexpand.braceexpand(str(item)):
            if glob.has_magic(pattern):
                found = sorted(glob.glob(pattern))
            else:
                found = [pattern] if Path(pattern).is_file() else []
            if not found:
                raise FileNotFoundError(f"no shard matches {pattern!r}")
            urls.extend(found)
    return urls


# ----------------------------------------------------------------------------------------------
# Decoding one sample


def frame_times(duration: float, steps: int) -> np.ndarray:
    """Starts t*D/T of `steps` equal time steps over [0, D): the sampled frames' times (s).

    Starts rather than centres so that a build with a keyframe every D/T seconds puts every
    sampled frame on a keyframe (each then decodes alone).
    """
    return np.arange(steps) * duration / steps


def decode_sample(sample: dict, cfg: DataConfig) -> dict:
    """Raw WebDataset sample (member bytes) -> one item of a batch (frames still uint8 THWC).

    Reads corpus samples and prepared ones alike. Raises ValueError naming the sample key and
    shard when a member is missing or undecodable.
    """
    key = sample.get("__key__", "?")
    try:
        if PREPARED_MEMBERS[0] in sample:
            return _load_prepared(sample, cfg)
        meta: SampleMeta = json.loads(sample["json"])
        duration = float(meta["duration"])
        frames = frames_at_times(sample["mp4"], frame_times(duration, cfg.frames), cfg.resolution)
        wave, _ = load_wave(sample["flac"], cfg.sample_rate)
        wave = fit_length(wave, round(duration * cfg.sample_rate))
        mel_full, mel = clip_mels(wave, cfg.mel, cfg.frames)
    except (KeyError, TypeError, ValueError, RecursionError, av.FFmpegError) as e:
        where = f"sample {key!r} of {sample.get('__url__', '?')}"
        raise ValueError(f"{where}: {type(e).__name__}: {e}") from e
    return {
        "frames": torch.from_numpy(frames),  # [T, R, R, 3] uint8
        "mel": mel,  # [T, 1, M, S]
        "mel_full": mel_full,  # [1, M, L]
        "label": int(meta["label"]),
        "class": meta["class"],
        "prompt": prompt_for(meta["class"]),
        "key": key,
    }


# ----------------------------------------------------------------------------------------------
# Prepared shards: items decoded once at one DataConfig, read back without decoding

PREPARED_MEMBERS = ("frames.npy", "json", "mel.npy")
"""Members of a prepared sample, in tar order: frames uint8 [T, R, R, 3], json (the corpus json as
`meta`, the clip's audio sample count and the `prepared` settings), whole-clip mel float32 [1, M, L]."""


def prepared_settings(cfg: DataConfig) -> dict:
    """The DataConfig fields a prepared item depends on (all but the shuffle buffer)."""
    return {k: v for k, v in asdict(cfg).items() if k != "shuffle_buffer"}


def prepare_sample(sample: dict, cfg: DataConfig) -> dict:
    """Raw corpus sample -> prepared sample (`__key__` and `PREPARED_MEMBERS`, as bytes)."""
    item = decode_sample(sample, cfg)
    meta = json.loads(sample["json"])
    info = {
        "meta": meta,
        "num_samples": round(float(meta["duration"]) * cfg.sample_rate),
        "prepared": prepared_settings(cfg),
    }
    return {
        "__key__": item["key"],
        "frames.npy": _npy(item["frames"].numpy()),
        "json": json.dumps(info, sort_keys=True).encode(),
        "mel.npy": _npy(item["mel_full"].numpy()),
    }


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _read_npy(data: bytes, dtype: type, shape_ok: Callable[[tuple], bool], what: str) -> np.ndarray:
    """An `.npy` member, once its header's dtype and shape are the expected ones and its data is
    exactly as long as they say (np.load would allocate what the header claims first)."""
    f = io.BytesIO(data)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    reader = readers.get(np.lib.format.read_magic(f))
    if reader is None:
        raise ValueError(f"{what}: unsupported .npy version")
    shape, fortran, got = reader(f)
    if got != np.dtype(dtype) or fortran or not shape_ok(shape):
        raise ValueError(f"{what}: {got} {list(shape)} is not the prepared dtype and shape")
    if len(data) - f.tell() != math.prod(shape) * got.itemsize:
        raise ValueError(f"{what}: {len(data) - f.tell()} data bytes for shape {list(shape)}")
    return np.frombuffer(data, dtype=got, offset=f.tell()).reshape(shape).copy()


def _load_prepared(sample: dict, cfg: DataConfig) -> dict:
    info = json.loads(sample["json"])
    if info["prepared"] != prepared_settings(cfg):
        raise ValueError(f"prepared with {info['prepared']}, not {prepared_settings(cfg)}")
    num_samples = info["num_samples"]
    if not isinstance(num_samples, int) or num_samples < 0:
        raise ValueError(f"num_samples {num_samples!r} is not a sample count")
    frames = _read_npy(
        sample["frames.npy"],
        np.uint8,
        lambda s: s == (cfg.frames, cfg.resolution, cfg.resolution, 3),
        "frames.npy",
    )
    mel = _read_npy(
        sample["mel.npy"],
        np.float32,
        lambda s: s == (1, cfg.n_mels, 1 + num_samples // cfg.hop),
        "mel.npy",
    )
    mel_full = torch.from_numpy(mel)
    return {
        "frames": torch.from_numpy(frames),
        "mel": step_mels(mel_full, num_samples, cfg.hop, cfg.frames),
        "mel_full": mel_full,
        "label": int(info["meta"]["label"]),
        "class": info["meta"]["class"],
        "prompt": prompt_for(info["meta"]["class"]),
        "key": sample["__key__"],
    }


def shard_settings(url: str) -> dict | None:
    """The `prepared` settings of a prepared shard (read from its first sample's json); None for
    a corpus shard."""
    problems: list[tuple[str, str, str]] = []  # refused members; the loader names each one
    first = next(
        read_shard(Path(url), members=("json",), report=lambda *p: problems.append(p)), None
    )
    if first is None and problems:  # not a readable shard at all
        raise ValueError(f"{url}: {problems[-1][2]}")
    return None if first is None else first.meta().get("prepared")


def check_prepared(urls: Sequence[str], cfg: DataConfig) -> None:
    """Raise ValueError naming the first prepared shard whose settings differ from `cfg`'s."""
    want = prepared_settings(cfg)
    for url in urls:
        got = shard_settings(url)
        if got is not None and got != want:
            diff = ", ".join(
                f"{k}={got.get(k)} (run: {v})" for k, v in want.items() if got.get(k) != v
            )
            raise ValueError(
                f"{url} was prepared with {diff}: prepare the corpus shards again with the run's "
                "settings (python -m model.prepare) or read the corpus shards directly"
            )


def collate(items: list[dict]) -> dict:
    """Items -> batch; frames stay uint8 (a quarter of the bytes to move between processes and to
    the device; convert them there with `to_float_frames`)."""
    return {
        "frames": torch.stack([it["frames"] for it in items]),
        "mel": torch.stack([it["mel"] for it in items]),
        "mel_full": torch.stack([it["mel_full"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "class": [it["class"] for it in items],
        "prompt": [it["prompt"] for it in items],
        "key": [it["key"] for it in items],
    }


def to_float_frames(frames: Tensor) -> Tensor:
    """uint8 [B, T, R, R, 3] -> float32 [B, T, 3, R, R] in [-1, 1] (one copy, then in place)."""
    B, T, H, W, C = frames.shape
    out = torch.empty(B, T, C, H, W, device=frames.device)
    return out.copy_(frames.permute(0, 1, 4, 2, 3)).mul_(1 / 127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------
# The loader


def shard_samples(url: str, refused: Callable[[str], None] | None = None) -> Iterator[dict]:
    """The raw samples of one shard (`__key__`, `__url__` and the bytes of each member the loader
    reads), in tar order, from the toolkit's bounded shard reader (`read_samples`).

    A member that is not a plain file, whose name or size `landscape_av.schema.member_problem`
    refuses, or that repeats its sample's extension is skipped unread and told to `refused` as
    one line `SHARD: 'MEMBER': reason` (default: a warning). A shard that is damaged or breaks
    the reader's bounds raises ValueError naming it, past the samples read before.
    """
    report = refused or _warn_refused

    def refuse(_key: str, name: str, reason: str) -> None:
        report(f"{url}: {shown(name)}: {reason}")

    try:
        for key, members in read_samples(url, USED_MEMBERS + PREPARED_MEMBERS, refuse):
            if members:
                yield {"__key__": key, "__url__": url, **members}
    except ShardUnreadable as e:
        raise ValueError(f"{url}: {e}") from None


def _warn_refused(line: str) -> None:
    warnings.warn(f"skipping a shard member: {line}", stacklevel=3)


def _shards_to_samples(items: Iterator[dict]) -> Iterator[dict]:
    """Loader stage: `dict(url=...)` -> the samples of that shard; an unreadable shard is skipped
    with a warning naming it (after the samples read before the damage)."""
    for item in items:
        try:
            yield from shard_samples(item["url"])
        except (OSError, ValueError) as e:
            _warn_and_skip(ValueError(f"{item['url']}: unreadable tar: {e}"))


def count_samples(url: str) -> int:
    """Samples of a shard, from the tar headers alone."""
    return len(shard_keys(Path(url)))


class ShardError(InputError, ValueError):
    """Training shards that are missing or were prepared with other settings."""


def check_shards(shards: str | Path | Sequence[str | Path], cfg: DataConfig) -> None:
    """Raise a one-line `--shards` ShardError when shards are missing or prepared otherwise."""
    try:
        check_prepared(expand_shards(shards), cfg)
    except (FileNotFoundError, ValueError) as e:
        raise ShardError(f"--shards: {e}") from e


def _warn_and_skip(exn: Exception) -> bool:
    warnings.warn(f"skipping a sample: {exn}", stacklevel=2)
    return True


class EpochShards(torch.utils.data.IterableDataset):
    """`dict(url=...)` of every shard, pass after pass, each pass in its own (seed, epoch) order.

    `epochs=None` never ends, so the workers (and DDP ranks) keep streaming without restarts.
    """

    def __init__(self, urls: list[str], shuffle: bool, seed: int, epoch: int, epochs: int | None):
        super().__init__()
        self.urls, self.shuffle, self.seed = urls, shuffle, seed
        self.epoch, self.epochs = epoch, epochs

    def __iter__(self) -> Iterator[dict]:
        passes = (
            itertools.count(self.epoch)
            if self.epochs is None
            else range(self.epoch, self.epoch + self.epochs)
        )
        for epoch in passes:
            urls = list(self.urls)
            if self.shuffle:
                random.Random(f"{self.seed}:{epoch}").shuffle(urls)
            yield from ({"url": url} for url in urls)


def make_loader(
    shards: str | Path | Sequence[str | Path],
    cfg: DataConfig | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    epochs: int | None = 1,
    drop_last: bool = True,
    pin_memory: bool = False,
) -> Iterator[dict]:
    """Batches (see the module docstring) from shards: a brace pattern, glob or list of them.

    `epochs` passes over the shards (None: without end, for step-based training) starting at pass
    number `epoch`; shard order and shuffle buffer follow (seed, epoch). Shards are split over DDP
    ranks and then over `num_workers` worker processes (fewer workers when there are fewer shards).
    `pin_memory` puts batches in page-locked memory for fast copies to a CUDA device.
    """
    cfg = cfg or DataConfig()
    urls = expand_shards(shards)
    check_prepared(urls, cfg)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if len(urls) < world:
        raise ValueError(f"{len(urls)} shard(s) cannot feed {world} DDP processes")
    stages = [
        EpochShards(urls, shuffle, seed, epoch, epochs),
        wds.split_by_node,
        wds.split_by_worker,
        _shards_to_samples,
    ]
    if shuffle and cfg.shuffle_buffer > 0:
        stages.append(
            wds.shuffle(cfg.shuffle_buffer, initial=cfg.shuffle_buffer, seed=f"{seed}:{epoch}")
        )
    stages += [
        wds.map(functools.partial(decode_sample, cfg=cfg), handler=_warn_and_skip),
        wds.batched(batch_size, collation_fn=collate, partial=not drop_last),
    ]
    workers = min(num_workers, len(urls) // world)
    loader = wds.WebLoader(
        wds.DataPipeline(*stages),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=pin_memory,
    )
    return loader


def training_batches(
    shards: str | Path | Sequence[str | Path],
    cfg: DataConfig,
    batch_size: int,
    num_workers: int,
    seed: int,
    used: int = 0,
    pin_memory: bool = False,
) -> Iterator[dict]:
    """Endless training batches (`make_loader` without end) after the first `used`, which a
    resumed run has trained on already (`runtime.skip`)."""
    loader = make_loader(
        shards, cfg, batch_size, num_workers, seed=seed, epochs=None, pin_memory=pin_memory
    )
    return runtime.skip(loader, used)
