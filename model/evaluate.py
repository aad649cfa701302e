"""One yardstick for Landscape: `python -m model.evaluate`.

    python -m model.evaluate --checkpoint RUN --shards 'CORPUS/data/test-*.tar' --weights W --out eval/
    python -m model.evaluate --shards 'CORPUS/data/test-*.tar' --videos other-model/ --weights W
    python -m model.evaluate --videos other-model/ --weights W        # no real clips: AV-Align, IS

Every metric follows the code its published numbers come from, under a named protocol
(`model.metrics.protocols`) printed beside each number and stored in metrics.json. The rows of the
tables, all under the same protocols:

    real              the test clips (FVD: real train clips against real test clips, the floor)
    model@walk        the run fed each clip's sound: one frame per walked latent, at the model's rate
    model@render      the same walk rendered at --fps (interpolated between walked latents)
    silence@...       the run fed silence as long as the clip (the paper's "w/o sound")
    interp@...        linear interpolation in W+ between two random latents (the paper's Fig. 2)
    videos:NAME       the mp4s of a --videos folder, each named by the key of the test clip whose
                      sound made it (another model's output)

AV-Align scores each video against the sound it was made from (the clip's; a --videos file's own
track or same-named .wav); the silence and interpolation rows so give its chance level. Per-video
values (AV-Align, CLIP, distance to the source clip) are in metrics.json under each row's
`per_video`. Per-video features are cached in out/cache/ (keyed by row, its inputs and the
protocols), so a rerun only computes what changed. torch runs on one intra-op thread during the
evaluation (a float sum split over more threads rounds differently), so the numbers are the same at
any OMP_NUM_THREADS; `--workers` threads work on videos side by side instead. Numbers made with
stand-in networks are marked as meaningless in metrics.json, metrics.md and on the terminal.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape_av.pipeline.shard import file_sha256
from landscape_av.progress import stage_progress
from model import runtime
from model.apps.checkpoint import checkpoint_folder, load_run
from model.apps.video import resample_walk, walk_sound
from model.audio import MelConfig, clip_mels, fit_length, load_wave
from model.config import Flag, InputError, UsageError, apply_overrides, command, run
from model.data import count_samples, expand_shards
from model.eval_media import (
    Clip,
    Folder,
    Video,
    file_sound,
    from_frames,
    iter_clips,
    read_video,
    scan_folder,
    sound_onsets,
)
from model.eval_report import print_summary, write_reports
from model.metrics import protocols as P
from model.metrics.av_align import VARIANTS, av_align
from model.metrics.clip_similarity import clip_similarity, video_embedding
from model.metrics.frechet import fit_gaussian, frechet_distance
from model.metrics.inception_score import inception_score
from model.metrics.networks import NETWORKS, Loaded, load_networks
from model.metrics.source_distance import mse
from model.video_model import render, start_latents

METRICS = ("fvd", "is_frame", "is_video", "clip", "av_align", "source")
ROWS = ("real", "model", "silence", "interp")
FRAMINGS = ("walk", "render")
TITLES = {
    "real": "Real test clips (FVD: train vs test)",
    "model": "Ours (the run)",
    "silence": "w/o sound (fed silence)",
    "interp": "W+ linear interpolation",
}
CACHE_VERSION = 2
EMPTY = np.zeros(0)  # a feature that does not apply (the video is too short for the window)


@dataclass
class EvalConfig:
    checkpoint: str | None = None  # run folder (newest checkpoint) or a checkpoint folder
    shards: str | None = None  # test shards: brace pattern or glob
    videos: str | None = None  # comma list of folders of generated mp4s (named by corpus key)
    train_shards: str | None = None  # real train clips of the FVD floor (default: test -> train)
    weights: str | None = None  # folder of the feature networks' files
    out: str = "eval"
    num_videos: int = P.STYLEGAN_V_VIDEOS
    metrics: tuple[str, ...] | str = METRICS  # the command line gives a comma list
    rows: tuple[str, ...] | str = ROWS
    seed: int = 0  # generated videos and StyleGAN-V's real-clip offsets
    fps: float | None = None  # render rate of the run's videos (None: each clip's own rate)
    frames: int = 16  # StyleGAN-V FVD window (fvd2048_16f)
    resolution: int = 256  # frames are resized to this before every network
    device: str = "auto"
    workers: int = 2  # threads reading, generating and extracting videos
    quiet: bool = False


# ----------------------------------------------------------------------------------------------
# The run's videos


@dataclass
class Run:
    folder: Path
    config: dict  # the run's training config
    digest: str
    latents: torch.nn.Module  # E_a + walker (SoundToLatents)
    G: torch.nn.Module

    @property
    def rate(self) -> float:
        return float(self.latents.cfg.fps)


def clip_seed(seed: int, key: str) -> int:
    """Seed of one clip's video: stable across `--num-videos` and shard changes."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Frames [T, 3, R, R] in [-1, 1] -> uint8 [T, R, R, 3] as StyleGAN-V and NVIDIA's metrics
    convert generator output: x * 127.5 + 128, clamped to [0, 255], truncated."""
    x = (frames * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.cpu().permute(0, 2, 3, 1).numpy()


def rendered(G: torch.nn.Module, ws: torch.Tensor) -> np.ndarray:
    """Latents ws [1, F, N, D] rendered 16 at a time: uint8 [F, R, R, 3]."""
    with torch.no_grad():
        chunks = [render(G, ws[:, s : s + 16])[0] for s in range(0, ws.shape[1], 16)]
    return to_uint8(torch.cat(chunks))


def sound_walk(run: Run, wave: torch.Tensor, seed: int) -> torch.Tensor:
    """The evaluated run's walked latents of one waveform [S] at 44.1 kHz: [1, T, N, D] at the
    model's rate. Every video of the run that the evaluation scores is made here."""
    return walk_sound(run.latents, run.G, wave, run.config["n_mels"], seed=seed)


def interpolation(G: torch.nn.Module, truncation: float, seed: int, steps: int) -> torch.Tensor:
    """W+ linear interpolation between two random start latents: [1, steps, N, D]."""
    gen = torch.Generator().manual_seed(seed)
    w = start_latents(G, 2, truncation, generator=gen)  # [2, N, D]
    alpha = torch.linspace(0, 1, steps, device=w.device).view(-1, 1, 1)
    return (w[0] + alpha * (w[1] - w[0]))[None]


def generated(cfg: EvalConfig, run: Run, clip: Clip, kind: str, onsets: np.ndarray) -> dict:
    """The run's videos of one clip for row `kind` (model, silence, interp): {kind@walk: Video at
    the model's rate, kind@render: Video at --fps (or the clip's own rate)}."""
    rate = MelConfig().sample_rate
    wave = fit_length(load_wave(clip.flac, rate)[0], round(clip.duration * rate))
    steps = max(1, round(clip.duration * run.rate))
    seed = clip_seed(cfg.seed, clip.key)
    if kind == "interp":
        ws = interpolation(run.G, run.config["model"]["truncation"], seed, steps)
    else:
        ws = sound_walk(run, torch.zeros_like(wave) if kind == "silence" else wave, seed)
    fps = cfg.fps or clip.fps
    out = round(clip.duration * fps)
    framings = {
        "walk": (ws, run.rate),
        "render": (resample_walk(ws, run.rate, fps, out, "linear"), fps),
    }
    return {
        f"{kind}@{name}": from_frames(clip.key, rendered(run.G, w), r, cfg.resolution, onsets, True)
        for name, (w, r) in framings.items()
    }


# ----------------------------------------------------------------------------------------------
# Features of one video, and their cache


@dataclass
class Extractors:
    """What turns a video into features: feature networks, the run's CLIP and F_a."""

    nets: dict[str, Loaded]
    clip: Any | None  # FrozenClip
    sound_clip: Any | None  # SoundClip
    clip_id: str
    n_mels: int
    device: torch.device


def feature_names(cfg: EvalConfig, ex: Extractors, real: bool, has_clip: bool) -> list[str]:
    """Names of the per-video features a row needs (network fingerprints included)."""
    sha = {k: "-".join(v[:12] for v in n.sha256.values()) for k, n in ex.nets.items()}
    names = []
    if "fvd" in cfg.metrics and "i3d" in ex.nets:
        names += [f"{fvd_protocol(cfg).name}:{sha['i3d']}", f"{P.ASVA_FVD.name}:{sha['i3d']}"]
    if "is_frame" in cfg.metrics and "inception" in ex.nets:
        names.append(f"{P.IS_FRAME.name}:{sha['inception']}")
    if "is_video" in cfg.metrics and "c3d" in ex.nets:
        names.append(f"{P.IS_VIDEO.name}:{sha['c3d']}")
    if "clip" in cfg.metrics and ex.clip is not None and has_clip:
        names += [f"{k}:{ex.clip_id}" for k in ("clip_video", "clip_text", "clip_audio")]
    if "av_align" in cfg.metrics:
        names += list(VARIANTS)
    if "source" in cfg.metrics and not real and has_clip:
        names.append("source_mse")
        if "lpips" in ex.nets:
            names.append(f"source_lpips:{sha['lpips']}")
    return names


def fvd_protocol(cfg: EvalConfig) -> P.Protocol:
    return P.with_frames(P.FVD, cfg.frames, cfg.resolution)


def floats(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [T, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def compute_features(
    names: list[str],
    ex: Extractors,
    cfg: EvalConfig,
    video: Video,
    real: bool,
    clip: Clip | None,
    source: Video | None,
) -> dict[str, np.ndarray]:
    """The features `names` of one video; `real` (a real clip) draws StyleGAN-V's random offset;
    `clip` is the test clip it belongs to, `source` that clip's own video (for "source")."""
    out: dict[str, np.ndarray] = {}
    n, frames = video.count, video.frames
    fvd = fvd_protocol(cfg)
    for full in names:
        name = full.split(":")[0]
        if name == fvd.name:
            off = (
                P.clip_offset(cfg.seed, video.key, n, fvd.frames) if real and n >= fvd.frames else 0
            )
            idx = P.consecutive(n, fvd.frames, off)
            out[full] = EMPTY if idx is None else ex.nets["i3d"].model(frames[idx][None])[0]
        elif name == P.ASVA_FVD.name:
            win = P.asva_windows(n, video.fps)
            out[full] = EMPTY if win is None else ex.nets["i3d"].model.prescaled(frames[win])
        elif name == P.IS_FRAME.name:
            out[full] = ex.nets["inception"].model(frames[[P.middle_frame(n)]])[0]
        elif name == P.IS_VIDEO.name:
            idx = P.consecutive(n, P.IS_VIDEO.frames)
            out[full] = EMPTY if idx is None else ex.nets["c3d"].model(frames[idx][None])[0]
        elif name == "clip_video":
            with torch.no_grad():
                emb = ex.clip.encode_image(floats(frames[: P.CLIP.frames]).to(ex.device))
            out[full] = video_embedding(emb.double().cpu().numpy())
        elif name == "clip_text":
            out[full] = ex.clip.encode_text([clip.prompt])[0].double().cpu().numpy()
        elif name == "clip_audio":
            mel_cfg = MelConfig(n_mels=ex.n_mels)
            wave = fit_length(
                load_wave(clip.flac, mel_cfg.sample_rate)[0],
                round(clip.duration * mel_cfg.sample_rate),
            )
            mel_full, _ = clip_mels(wave, mel_cfg, 1)
            with torch.no_grad():
                out[full] = ex.sound_clip(mel_full[None].to(ex.device))[0].double().cpu().numpy()
        elif name in VARIANTS:
            ok = video.onsets is not None and len(video.flow)
            out[full] = (
                np.float64(av_align(video.flow, video.fps, video.onsets, name)) if ok else EMPTY
            )
        elif name in ("source_mse", "source_lpips"):
            k = min(n, P.SOURCE.frames)
            idx = P.frames_at(np.arange(k) / video.fps, source.count, source.fps)
            a, b = floats(frames[:k]), floats(source.frames[idx])
            if name == "source_mse":
                out[full] = np.float64(mse(a.numpy(), b.numpy()))
            else:
                out[full] = np.float64(ex.nets["lpips"].model(a, b).mean())
    return out


class FeatureCache:
    """Per-video features of one row under one fingerprint: `cache/ROW-FINGERPRINT.npz`."""

    def __init__(self, folder: Path, row: str, fingerprint: dict):
        folder.mkdir(parents=True, exist_ok=True)
        safe = row.replace(":", "_").replace("@", "_").replace("/", "_")
        self.path = folder / f"{safe}-{_digest(fingerprint)[:16]}.npz"
        self.items: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path.is_file():
            with np.load(self.path) as f:
                self.items = {k: f[k] for k in f.files}

    def missing(self, key: str, names: list[str]) -> list[str]:
        return [n for n in names if f"{key}/{n}" not in self.items]

    def get(self, key: str, name: str) -> np.ndarray:
        return self.items[f"{key}/{name}"]

    def put(self, key: str, values: dict[str, np.ndarray]) -> None:
        self.items.update({f"{key}/{n}": v for n, v in values.items()})
        self.dirty = self.dirty or bool(values)

    def save(self) -> None:
        """Write the file (atomically) when something was added."""
        if not self.dirty:
            return
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, **self.items)
        tmp.replace(self.path)
        self.dirty = False


def bounded_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """`map(fn, items)` on `workers` threads, in order, holding at most 2 * workers results."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending: list[concurrent.futures.Future] = []
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


# ----------------------------------------------------------------------------------------------
# Rows: where videos come from


@dataclass
class Row:
    name: str
    title: str
    real: bool  # real clips (StyleGAN-V's random offset)
    names: list[str]  # features
    cache: FeatureCache
    keys: list[str] = field(default_factory=list)  # videos scored, in order
    problems: dict[str, list[str]] = field(default_factory=dict)  # kind -> one line each

    def problem(self, kind: str, line: str) -> None:
        self.problems.setdefault(kind, []).append(line)


@dataclass
class Source:
    """Rows that one pass over the clips (or a folder) produces together, and how."""

    rows: dict[str, Row]
    make: Callable[[Any], dict[str, Video | str]]  # item -> {row: Video, or a problem line}
    items: list[Any]
    task: str


def _corpus_digest(shards: str) -> str:
    """Fingerprint of a shard set: names, sizes and modification times."""
    parts = [
        (Path(u).name, Path(u).stat().st_size, Path(u).stat().st_mtime_ns)
        for u in expand_shards(shards)
    ]
    return _digest(parts)[:16]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _folder_digest(folder: Folder) -> str:
    return _digest(
        [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.path.iterdir())]
    )[:16]


def count_clips(shards: str, limit: int) -> int:
    """Clips of the shards, at most `limit`; an unreadable shard is an `InputError` naming it."""
    total = 0
    for url in expand_shards(shards):
        try:
            total += count_samples(url)
        except (OSError, ValueError) as e:
            raise InputError(f"{url}: not a shard ({' '.join(str(e).split())})") from None
    return min(limit, total)


def train_pattern(shards: str) -> str:
    """The train shards beside test shards: `test-` becomes `train-` in the file-name part."""
    head, sep, name = shards.rpartition("/")
    return head + sep + name.replace("test-", "train-")


def extract(source: Source, ex: Extractors, cfg: EvalConfig, clips: dict[str, Clip], bars) -> None:
    """Features of every video of a source that the caches lack, on worker threads, in order."""
    task = bars.add_task(source.task, total=len(source.items))

    def work(item: Any) -> tuple[str, dict[str, Any]]:
        key = item.key if isinstance(item, Clip) else item
        if not any(r.cache.missing(key, r.names) for r in source.rows.values()):
            return key, {}
        made = source.make(item)
        clip = clips.get(key)
        src = None
        if clip is not None and any("source_mse" in r.names for r in source.rows.values()):
            src = clip.video(cfg.resolution, flow=False)
        out: dict[str, Any] = {}
        for name, video in made.items():
            row = source.rows[name]
            if isinstance(video, str):
                out[name] = video
                continue
            todo = row.cache.missing(key, row.names)
            out[name] = compute_features(todo, ex, cfg, video, row.real, clip, src)
            out[name]["__frames"] = np.asarray([video.count, video.fps])
        return key, out

    for key, results in bounded_map(work, source.items, cfg.workers):
        for name, row in source.rows.items():
            value = results.get(name)
            if isinstance(value, str):
                row.problem("unreadable", value)
                continue
            if value is not None:
                row.cache.put(key, value)
            if not row.cache.missing(key, row.names):
                row.keys.append(key)
        bars.advance(task)
    for row in source.rows.values():
        row.cache.save()


def _rows(cfg: EvalConfig, ex: Extractors, run: Run | None, clips: list[Clip], bars) -> list[Row]:
    """Every row's features, extracted (or read from the cache); the rows in table order."""
    cache = Path(cfg.out) / "cache"
    fvd = fvd_protocol(cfg)
    proto = {"v": CACHE_VERSION, "res": cfg.resolution, "frames": fvd.frames, "seed": cfg.seed}
    by_key = {c.key: c for c in clips}
    out: list[Row] = []
    if cfg.shards:
        corpus = _corpus_digest(cfg.shards)
        if "real" in table_rows(cfg):
            names = feature_names(cfg, ex, True, True)
            row = Row(
                "real",
                TITLES["real"],
                True,
                names,
                FeatureCache(cache, "real", proto | {"corpus": corpus}),
            )
            extract(
                Source(
                    {"real": row},
                    lambda c: {"real": c.video(cfg.resolution, True)},
                    clips,
                    "real clips",
                ),
                ex,
                cfg,
                by_key,
                bars,
            )
            out.append(row)
        if run is not None:
            for kind in (r for r in ROWS[1:] if r in cfg.rows):
                names = feature_names(cfg, ex, False, True)
                fp = proto | {"corpus": corpus, "run": run.digest, "fps": cfg.fps, "kind": kind}
                rows = {
                    f"{kind}@{f}": Row(
                        f"{kind}@{f}",
                        f"{TITLES[kind]}, {f}",
                        False,
                        names,
                        FeatureCache(cache, f"{kind}@{f}", fp),
                    )
                    for f in FRAMINGS
                }

                def make(clip: Clip, kind: str = kind) -> dict:
                    return generated(cfg, run, clip, kind, sound_onsets(clip.flac))

                extract(Source(rows, make, clips, f"generate {kind}"), ex, cfg, by_key, bars)
                out += rows.values()
    for path in _folders(cfg):
        folder = scan_folder(path, [c.key for c in clips] if cfg.shards else None)
        name = f"videos:{folder.name}"
        names = feature_names(cfg, ex, False, bool(cfg.shards))
        fp = proto | {"folder": str(folder.path.resolve()), "files": _folder_digest(folder)}
        if cfg.shards:
            fp["corpus"] = _corpus_digest(cfg.shards)
        row = Row(name, f"{folder.path}", False, names, FeatureCache(cache, name, fp))
        for key in folder.missing:
            row.problem("missing", f"{folder.path / (key + '.mp4')}: missing (test clip {key})")
        for stem in folder.extra:
            row.problem(
                "extra",
                f"{folder.files.get(stem, folder.path / (stem + '.mp4'))}: extra (no evaluated test clip {stem})",
            )

        def make(key: str, folder: Folder = folder, row: Row = row) -> dict:
            path = folder.files[key]
            try:
                sound = file_sound(path)
                onsets = None if sound is None else sound_onsets(sound)
                return {row.name: read_video(path, key, cfg.resolution, onsets)}
            except Exception as e:  # noqa: BLE001 - any unreadable file is one line, never a crash
                first = " ".join(str(e).split()) or type(e).__name__
                return {row.name: f"{path}: unreadable ({first})"}

        extract(
            Source({name: row}, make, list(folder.files), f"videos {folder.name}"),
            ex,
            cfg,
            by_key,
            bars,
        )
        out.append(row)
    return out


def _folders(cfg: EvalConfig) -> list[str]:
    return [f.strip() for f in (cfg.videos or "").split(",") if f.strip()]


def table_rows(cfg: EvalConfig) -> tuple[str, ...]:
    """The rows of clips and the run evaluated: those asked for, plus the real clips whenever
    FVD needs them."""
    return tuple(r for r in ROWS if r in cfg.rows or (r == "real" and "fvd" in cfg.metrics))


# ----------------------------------------------------------------------------------------------
# Metrics of a row


def _stack(row: Row, name: str) -> tuple[list[str], np.ndarray | None]:
    full = next((x for x in row.names if x.split(":")[0] == name), None)
    if full is None:
        return [], None
    keys = [k for k in row.keys if row.cache.get(k, full).size]
    if not keys:
        return [], np.zeros((0,))
    return keys, np.stack([row.cache.get(k, full) for k in keys])


def row_metrics(row: Row, cfg: EvalConfig, need: dict[str, int]) -> dict[str, Any]:
    """Set and per-video metrics of a row (FVD is filled in later, against the real clips)."""
    res: dict[str, Any] = {}
    per: dict[str, dict[str, float]] = {k: {} for k in row.keys}
    for proto in (P.IS_FRAME, P.IS_VIDEO):
        keys, p = _stack(row, proto.name)
        if p is not None and len(keys) >= 2:
            splits = P.video_splits(len(keys))
            mean, std = inception_score(p, splits, shuffle=proto is P.IS_VIDEO)
            res[proto.name] = {"mean": mean, "std": std, "splits": splits, "videos": len(keys)}
    for name in ("clip_video", *VARIANTS, "source_mse", "source_lpips"):
        keys, x = _stack(row, name)
        if x is None or not keys:
            continue
        if name == "clip_video":
            for target in ("text", "audio"):
                _, t = _stack(row, f"clip_{target}")
                res[f"clip_{target}"] = clip_similarity(x, t)
                for k, v, tv in zip(keys, x, t, strict=True):
                    per[k][f"clip_{target}"] = clip_similarity(v[None], tv[None])
            continue
        res[name] = float(x.mean())
        for k, v in zip(keys, x, strict=True):
            per[k][name] = float(v)
    for k in row.keys:  # wrong-length: a window a requested protocol needs does not fit
        short = [
            n.split(":")[0]
            for n in row.names
            if n.split(":")[0] in need and not row.cache.get(k, n).size
        ]
        if short:
            count, fps = (
                row.cache.get(k, "__frames") if f"{k}/__frames" in row.cache.items else (0, 0)
            )
            row.problem(
                "wrong_length",
                f"{row.name} {k}: {int(count)} frames at {fps:g} fps: no window of {', '.join(short)} fits; left out of them",
            )
        if any(v in row.names for v in VARIANTS) and not row.cache.get(k, "av_align").size:
            row.problem(
                "no_sound",
                f"{row.name} {k}: no sound (no {k}.wav beside it, no audio track): no AV-Align",
            )
    res["per_video"] = {k: v for k, v in per.items() if v}
    res["videos"] = len(row.keys)
    return res


def _fvd(rows: list[Row], results: dict, cfg: EvalConfig, ex, train: Row | None) -> None:
    """FVD of every row against the real test clips under each FVD protocol; the real row's is
    the floor, real train clips against real test clips."""
    real = next((r for r in rows if r.name == "real"), None)
    if real is None or "i3d" not in ex.nets or "fvd" not in cfg.metrics:
        return
    for proto, biased in ((fvd_protocol(cfg), True), (P.ASVA_FVD, False)):
        _, ref = _stack(real, proto.name)
        if ref is None or len(ref) < 2:
            continue
        ref_g = fit_gaussian(ref.reshape(-1, ref.shape[-1]), biased)
        for row in rows:
            other = train if row is real else row
            if other is None:
                continue
            _, x = _stack(other, proto.name)
            if x is not None and len(x) >= 2:
                g = fit_gaussian(x.reshape(-1, x.shape[-1]), biased)
                results[row.name][proto.name] = frechet_distance(g, ref_g)


# ----------------------------------------------------------------------------------------------
# The evaluation


def _extractors(
    cfg: EvalConfig, run: Run | None, device: torch.device
) -> tuple[Extractors, list[str]]:
    wanted = [n for n, net in NETWORKS.items() if set(net.metrics) & set(cfg.metrics)]
    nets, problems = load_networks(cfg.weights, wanted, device)
    clip = sound_clip = None
    clip_id = ""
    if "clip" in cfg.metrics:
        if run is None or not cfg.shards:
            problems.append(
                "clip: needs --checkpoint (its CLIP and sound encoder) and --shards (the class prompts); skipping clip"
            )
        else:
            try:
                clip, sound_clip, clip_id = _run_clip(run, device)
            except (SystemExit, FileNotFoundError, ValueError, KeyError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                problems.append(f"the run's CLIP / sound encoder: {first}; skipping clip")
    n_mels = run.config["n_mels"] if run is not None else 0
    return Extractors(nets, clip, sound_clip, clip_id, n_mels, device), problems


def _run_clip(run: Run, device: torch.device):
    """The run's CLIP and sound encoder F_a (as its training loaded them) and an id of both."""
    from model.train import TrainConfig, load_frozen

    tc = TrainConfig()
    apply_overrides(
        tc, {k: v for k, v in run.config.items() if k != "generator_kwargs"}, "run config"
    )
    frozen = load_frozen(tc, device)
    files = [f for f in (tc.clip, tc.sound_clip) if f]
    ident = {"tiny": tc.tiny, "seed": tc.seed, "arch": tc.clip_arch, "files": files}
    if not tc.tiny:
        ident["sha"] = [file_sha256(Path(f)) if Path(f).is_file() else f for f in files]
    return frozen.clip, frozen.sound_clip, _digest(ident)[:12]


def _load_run(cfg: EvalConfig, device: torch.device) -> Run | None:
    if not cfg.checkpoint:
        return None
    folder = checkpoint_folder(cfg.checkpoint)
    latents, G, config = load_run(folder, device)
    return Run(folder, config, file_sha256(folder / "model.safetensors")[:16], latents, G)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; writes metrics.json and metrics.md into cfg.out and returns the json."""
    rt = runtime.setup(cfg.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums split over threads round differently: --workers instead
    try:
        return _evaluate(cfg, rt)
    finally:
        torch.set_num_threads(threads)


def _evaluate(cfg: EvalConfig, rt: runtime.Runtime) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    run = _load_run(cfg, rt.device)
    clips: list[Clip] = []
    if cfg.shards:
        n = count_clips(cfg.shards, cfg.num_videos)
        if n < 2:
            raise UsageError(f"--shards {cfg.shards}: {n} clip(s); the metrics need at least 2")
        clips = list(iter_clips(cfg.shards, n))
    ex, problems = _extractors(cfg, run, rt.device)
    for line in problems:
        print(line, file=sys.stderr)
    fvd = fvd_protocol(cfg)
    need = {fvd.name: fvd.frames, P.ASVA_FVD.name: 12, P.IS_VIDEO.name: 16}
    with stage_progress(cfg.quiet) as bars:
        rows = _rows(cfg, ex, run, clips, bars)
        train = _train_row(cfg, ex, bars, problems) if any(r.name == "real" for r in rows) else None
    results = {row.name: row_metrics(row, cfg, need) for row in rows}
    _fvd(rows, results, cfg, ex, train)
    result = {
        "standin": any(n.standin for n in ex.nets.values()),
        "checkpoint": None if run is None else str(run.folder),
        "shards": cfg.shards,
        "videos_folders": _folders(cfg),
        "clips": len(clips),
        "seed": cfg.seed,
        "fps": cfg.fps,
        "resolution": cfg.resolution,
        "model_rate": None if run is None else run.rate,
        "protocols": _protocol_records(cfg, ex),
        "networks": {k: {"files": v.sha256, "standin": v.standin} for k, v in ex.nets.items()},
        "skipped": problems,
        "rows": {row.name: {"title": row.title, **results[row.name]} for row in rows},
        "row_order": [row.name for row in rows],
        "problems": {row.name: row.problems for row in rows if row.problems},
        "counts": {
            row.name: {k: len(v) for k, v in row.problems.items()} for row in rows if row.problems
        },
    }
    write_reports(result, out)
    return result


def _protocol_records(cfg: EvalConfig, ex: Extractors) -> dict[str, dict]:
    out = {}
    for proto in (
        fvd_protocol(cfg),
        P.ASVA_FVD,
        P.IS_FRAME,
        P.IS_VIDEO,
        P.CLIP,
        P.AV_ALIGN,
        P.AV_ALIGN_2023,
        P.SOURCE,
    ):
        if proto.metric.split("_2023")[0] not in cfg.metrics:
            continue
        net = ex.nets.get(proto.network) if proto.network else None
        if proto.network and net is None:
            continue
        rec = proto.record(None if net is None else net.sha256, bool(net and net.standin))
        if proto.resolution:
            rec["resolution"] = cfg.resolution
        out[proto.name] = rec
    return out


def _train_row(cfg: EvalConfig, ex: Extractors, bars, problems: list[str]) -> Row | None:
    """Features of the real train clips (the FVD floor); None, and a line, without train shards."""
    if "fvd" not in cfg.metrics or "i3d" not in ex.nets:
        return None
    pattern = cfg.train_shards or train_pattern(cfg.shards)
    try:
        m = count_clips(pattern, cfg.num_videos)
    except FileNotFoundError as e:
        problems.append(f"--train-shards: {e}; no FVD floor (real train vs real test)")
        print(problems[-1], file=sys.stderr)
        return None
    names = [x for x in feature_names(cfg, ex, True, False) if "fvd" in x.split(":")[0]]
    fp = {
        "v": CACHE_VERSION,
        "res": cfg.resolution,
        "frames": cfg.frames,
        "seed": cfg.seed,
        "corpus": _corpus_digest(pattern),
    }
    row = Row(
        "real-train",
        "real train clips",
        True,
        names,
        FeatureCache(Path(cfg.out) / "cache", "real-train", fp),
    )
    clips = list(iter_clips(pattern, m))
    extract(
        Source(
            {"real-train": row},
            lambda c: {"real-train": c.video(cfg.resolution, False)},
            clips,
            "real train clips",
        ),
        ex,
        cfg,
        {},
        bars,
    )
    return row


# ----------------------------------------------------------------------------------------------
# CLI


def _choices(value: str | tuple[str, ...], allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """A comma list (or list) of names from `allowed`, in `allowed`'s order."""
    items = value.split(",") if isinstance(value, str) else value
    items = tuple(v.strip() for v in items if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise UsageError(f"{flag} {','.join(bad) or 'nothing'}: choose from {','.join(allowed)}")
    return tuple(v for v in allowed if v in items)


@command(
    "python -m model.evaluate",
    EvalConfig,
    [
        Flag("checkpoint", "Run folder (its newest checkpoint) or a checkpoint folder: adds the run's rows.", exists=True),
        Flag("shards", "Test shards (brace pattern or glob): the real clips and their sounds."),
        Flag("videos", "Comma list of folders of generated mp4s named by test-clip key (sound muxed in or KEY.wav beside)."),
        Flag("train_shards", "Real train clips for the FVD floor (default: --shards with test- -> train-)."),
        Flag("weights", "Folder of the feature networks (README: Evaluate)."),
        Flag("out", "Output folder (cache, metrics)."),
        Flag("num_videos", "Test clips evaluated (at least 2)."),
        Flag("metrics", "Comma list of " + ",".join(METRICS) + "."),
        Flag("rows", "Rows of the run: comma list of " + ",".join(ROWS) + ".", name="--baselines"),
        Flag("seed", "Seed of the generated videos and of the real clips' FVD offsets."),
        Flag("fps", "Render rate of the run's videos (default: each test clip's own rate)."),
        Flag("frames", f"Frames of StyleGAN-V's FVD window (at least {P.I3D_MIN_FRAMES})."),
        Flag("resolution", "Side the frames are resized to before every network."),
        Flag("device", "Where to run.", choices=runtime.DEVICES),
        Flag("workers", "Threads reading, generating and extracting videos."),
        Flag("quiet", "No progress bars."),
    ],
)  # fmt: skip
def cli(cfg: EvalConfig) -> None:
    """Score the run's videos, other models' videos and the real clips under named protocols."""
    cfg.metrics = _choices(cfg.metrics, METRICS, "--metrics")
    cfg.rows = _choices(cfg.rows, ROWS, "--baselines")
    for flag, value, least in (("--num-videos", cfg.num_videos, 2), ("--frames", cfg.frames, P.I3D_MIN_FRAMES),
                               ("--workers", cfg.workers, 1), ("--resolution", cfg.resolution, 16)):  # fmt: skip
        if value < least:
            why = " (the I3D network pools 9 frames)" if flag == "--frames" else ""
            raise UsageError(f"{flag} {value}: must be at least {least}{why}")
    if cfg.fps is not None and cfg.fps <= 0:
        raise UsageError(f"--fps {cfg.fps}: must be positive")
    if not (cfg.shards or cfg.videos):
        raise UsageError("give --shards (the test clips), --videos (folders of mp4s), or both")
    if cfg.checkpoint and not cfg.shards:
        raise UsageError(
            "--checkpoint needs --shards: the run's videos are made from the test clips' sounds"
        )
    if cfg.shards:
        try:
            expand_shards(cfg.shards)
        except FileNotFoundError as e:
            raise UsageError(f"--shards: {e}") from None
    for folder in _folders(cfg):
        if not Path(folder).is_dir():
            raise UsageError(f"--videos {folder}: no such folder")
    result = evaluate(cfg)
    print_summary(result)
    print(f"{cfg.out}/metrics.json, {cfg.out}/metrics.md written")


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
