"""Evaluate a run: `python -m model.evaluate --checkpoint RUN_DIR --shards 'CORPUS/data/test-*.tar'
--weights DIR --out eval/`.

For the first `--num-videos` test clips (shard order) the run generates a video from each clip's
sound (`model.generate.generate_video`, in memory, seeded per clip), and every metric of the paper's Tables 2, 3a and
3b plus AV-Align is computed for it and for the baselines, each a row of the same tables:

    real     the test clips themselves (FVD: real train clips against real test clips, the floor)
    model    the run, fed the clip's sound
    silence  the run fed silence of the clip's length (the paper's "w/o sound" row)
    interp   linear interpolation in W+ between two random start latents (the paper's Fig. 2 baseline)

Every video is seen at `--fps` (real clips are sampled at the same times); FVD, IS, CLIP similarity
and reconstruction read its first `--frames` (16) consecutive frames, AV-Align the whole clip.
Per-clip features (out/cache/, one file per row and protocol fingerprint, real clips keyed by
corpus and protocol) are kept, so a rerun only generates and extracts what changed.
Writes out/metrics.json and out/metrics.md (the tables, each figure with its protocol).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape_av.corpus.decode import frames_at_times
from landscape_av.pipeline.shard import file_sha256
from landscape_av.progress import stage_progress
from model import runtime
from model.audio import MelConfig, clip_mels, fit_length, load_wave
from model.config import Flag, InputError, UsageError, apply_overrides, command, run
from model.data import count_samples, expand_shards, prompt_for, shard_samples
from model.generate import checkpoint_folder, generate_video, load_run
from model.metrics.av_align import av_align
from model.metrics.clip_similarity import clip_similarity, video_embedding
from model.metrics.frechet import fit_gaussian, frechet_distance
from model.metrics.inception_score import inception_score
from model.metrics.networks import NETWORKS, Loaded, load_networks
from model.metrics.reconstruction import mse
from model.video_model import render, start_latents

METRICS = ("fvd", "is_frame", "is_video", "clip", "av_align", "recon")
ROWS = ("real", "model", "silence", "interp")
ROW_TITLES = {
    "real": "Real test clips",
    "model": "Ours (the run)",
    "silence": "w/o sound (fed silence)",
    "interp": "W+ linear interpolation",
}
SPLITS = 10
STYLEGAN_V_VIDEOS = 2048


@dataclass
class EvalConfig:
    checkpoint: str = ""  # run folder (newest checkpoint) or a checkpoint folder
    shards: str = ""  # test shards: brace pattern or glob
    train_shards: str | None = None  # real train clips of the FVD floor (default: test -> train)
    weights: str | None = None  # folder of the feature networks' files
    out: str = "eval"
    num_videos: int = STYLEGAN_V_VIDEOS
    metrics: tuple[str, ...] | str = METRICS  # the command line gives a comma list
    rows: tuple[str, ...] | str = ROWS
    seed: int = 0
    fps: float = 8.0  # frames per second of generated and real videos
    frames: int = 16  # consecutive frames per video for FVD, IS, CLIP and reconstruction
    min_flow: float = 1.0  # AV-Align: smallest optical-flow peak (px) that counts
    device: str = "auto"
    workers: int = 2  # threads decoding clips and extracting their features
    quiet: bool = False


# ----------------------------------------------------------------------------------------------
# Clips and videos


@dataclass
class Clip:
    """One test (or train) clip of the corpus, decoded on demand."""

    key: str
    index: int
    meta: dict
    mp4: bytes
    flac: bytes

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])

    @property
    def prompt(self) -> str:
        return prompt_for(self.meta["class"])

    def steps(self, fps: float) -> int:
        return max(1, round(self.duration * fps))

    def frames(self, fps: float, size: int) -> np.ndarray:
        """uint8 [T, size, size, 3] at times k/fps (short side resized, centre-cropped)."""
        return frames_at_times(self.mp4, np.arange(self.steps(fps)) / fps, size)

    def wave(self, rate: int) -> torch.Tensor:
        w, _ = load_wave(self.flac, rate)
        return fit_length(w, round(self.duration * rate))


def iter_clips(shards: str, limit: int) -> Iterator[Clip]:
    """The first `limit` clips of the shards, in sorted shard order and tar order."""
    n = 0
    for url in expand_shards(shards):
        for sample in shard_samples(url):
            if n >= limit:
                return
            yield Clip(
                sample["__key__"], n, json.loads(sample["json"]), sample["mp4"], sample["flac"]
            )
            n += 1


def count_clips(shards: str, limit: int) -> int:
    """Clips of the shards, at most `limit`; an unreadable shard is an `InputError` naming it."""
    total = 0
    for url in expand_shards(shards):
        try:
            total += count_samples(url)
        except (OSError, ValueError) as e:
            raise InputError(f"{url}: not a shard ({' '.join(str(e).split())})") from None
    return min(limit, total)


def clip_seed(seed: int, key: str) -> int:
    """Seed of one clip's video: stable across `--num-videos` and shard changes."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Frames [T, 3, R, R] in [-1, 1] -> uint8 [T, R, R, 3]."""
    return (
        ((frames.clamp(-1, 1) + 1) * 127.5)
        .round()
        .to(torch.uint8)
        .cpu()
        .permute(0, 2, 3, 1)
        .numpy()
    )


def sound_video(cfg: EvalConfig, run: Run, clip: Clip, row: str) -> np.ndarray:
    """The run's video (uint8 [T, R, R, 3] at cfg.fps) for a clip's sound (row "model") or for
    silence as long (row "silence"), generated in memory."""
    rate = MelConfig().sample_rate
    wave = clip.wave(rate)
    if row == "silence":
        wave = torch.zeros_like(wave)
    frames = generate_video(
        run.latents, run.G, wave, run.config["n_mels"], fps=cfg.fps,
        seed=clip_seed(cfg.seed, clip.key),
    )  # fmt: skip
    return to_uint8(frames)


def interpolate(G: torch.nn.Module, truncation: float, seed: int, steps: int) -> np.ndarray:
    """W+ linear interpolation between two random start latents, rendered: uint8 [T, R, R, 3]."""
    gen = torch.Generator().manual_seed(seed)
    w = start_latents(G, 2, truncation, generator=gen)  # [2, N, D]
    alpha = torch.linspace(0, 1, steps, device=w.device).view(-1, 1, 1)
    ws = w[0] + alpha * (w[1] - w[0])  # [T, N, D]
    with torch.no_grad():
        frames = [render(G, ws[None, s : s + 16])[0] for s in range(0, steps, 16)]
    return to_uint8(torch.cat(frames))


# ----------------------------------------------------------------------------------------------
# Features of one video, and their cache


@dataclass
class Extractors:
    """What turns a video into features: feature networks, the run's CLIP and F_a, LPIPS."""

    nets: dict[str, Loaded]
    clip: Any | None  # FrozenClip
    sound_clip: Any | None  # SoundClip
    clip_id: str
    n_mels: int
    device: torch.device


def feature_names(cfg: EvalConfig, ex: Extractors, row: str) -> list[str]:
    """Names of the per-clip features a row needs (network fingerprints included)."""
    sha = {k: "-".join(v[:12] for v in n.sha256.values()) for k, n in ex.nets.items()}
    names = []
    if "fvd" in cfg.metrics and "i3d" in ex.nets:
        names.append(f"i3d-{sha['i3d']}")
    if "is_frame" in cfg.metrics and "inception" in ex.nets:
        names.append(f"inception-{sha['inception']}")
    if "is_video" in cfg.metrics and "c3d" in ex.nets:
        names.append(f"c3d-{sha['c3d']}")
    if "clip" in cfg.metrics and ex.clip is not None:
        names += [f"clipvideo-{ex.clip_id}", f"cliptext-{ex.clip_id}", f"clipaudio-{ex.clip_id}"]
    if "av_align" in cfg.metrics:
        names.append(f"avalign-{cfg.min_flow:g}")
    if "recon" in cfg.metrics and row != "real":
        names.append("mse")
        if "lpips" in ex.nets:
            names.append(f"lpips-{sha['lpips']}")
    return names


def compute_features(
    names: list[str],
    ex: Extractors,
    cfg: EvalConfig,
    clip: Clip,
    video: np.ndarray,
    real: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The features `names` of one video (uint8 [T, R, R, 3] at cfg.fps) of `clip`; `real` holds
    the clip's own frames at the same times (for reconstruction)."""
    window = video[: cfg.frames]
    if len(window) < cfg.frames:
        raise ValueError(
            f"clip {clip.key}: {len(video)} frames at {cfg.fps:g} fps, need {cfg.frames}"
        )
    out: dict[str, np.ndarray] = {}
    floats = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # noqa: E731
    for name in names:
        kind = name.split("-")[0]
        if kind in ("i3d", "c3d"):
            out[name] = ex.nets[kind].model(window[None])[0]
        elif kind == "inception":
            out[name] = ex.nets[kind].model(window)
        elif kind == "clipvideo":
            with torch.no_grad():
                emb = ex.clip.encode_image(floats(window).to(ex.device)).double().cpu().numpy()
            out[name] = video_embedding(emb)
        elif kind == "cliptext":
            out[name] = ex.clip.encode_text([clip.prompt])[0].double().cpu().numpy()
        elif kind == "clipaudio":
            mel_cfg = MelConfig(n_mels=ex.n_mels)
            mel_full, _ = clip_mels(clip.wave(mel_cfg.sample_rate), mel_cfg, 1)
            with torch.no_grad():
                emb = ex.sound_clip(mel_full[None].to(ex.device))[0]
            out[name] = emb.double().cpu().numpy()
        elif kind == "avalign":
            score = av_align(
                video, cfg.fps, clip.wave(MelConfig().sample_rate), min_flow=cfg.min_flow
            )
            out[name] = np.float64(score)
        elif kind == "mse":
            out[name] = np.float64(mse(floats(window).numpy(), floats(real[: cfg.frames]).numpy()))
        elif kind == "lpips":
            a, b = floats(window).to(ex.device), floats(real[: cfg.frames]).to(ex.device)
            out[name] = np.float64(ex.nets["lpips"].model(a, b).mean().item())
    return out


class FeatureCache:
    """Per-clip features of one row under one fingerprint: `cache/ROW-FINGERPRINT.npz`."""

    def __init__(self, folder: Path, row: str, fingerprint: dict):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{row}-{_digest(fingerprint)[:16]}.npz"
        self.items: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as f:
                self.items = {k: f[k] for k in f.files}

    def missing(self, key: str, names: list[str]) -> list[str]:
        return [n for n in names if f"{key}/{n}" not in self.items]

    def get(self, key: str, name: str) -> np.ndarray:
        return self.items[f"{key}/{name}"]

    def put(self, key: str, values: dict[str, np.ndarray]) -> None:
        self.items.update({f"{key}/{n}": v for n, v in values.items()})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, **self.items)
        tmp.replace(self.path)


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
# The evaluation


@dataclass
class Run:
    folder: Path
    config: dict  # the run's training config
    digest: str
    resolution: int
    latents: torch.nn.Module  # E_a + walker (SoundToLatents)
    G: torch.nn.Module


def _corpus_digest(shards: str) -> str:
    """Fingerprint of a shard set: names, sizes and modification times."""
    parts = [
        (Path(u).name, Path(u).stat().st_size, Path(u).stat().st_mtime_ns)
        for u in expand_shards(shards)
    ]
    return _digest(parts)[:16]


def _extractors(cfg: EvalConfig, run: Run, device: torch.device) -> tuple[Extractors, list[str]]:
    wanted = [n for n, net in NETWORKS.items() if set(net.metrics) & set(cfg.metrics)]
    nets, problems = load_networks(cfg.weights, wanted, device)
    clip = sound_clip = None
    clip_id = ""
    if "clip" in cfg.metrics:
        try:
            clip, sound_clip, clip_id = _run_clip(run, device)
        except (SystemExit, FileNotFoundError, ValueError, KeyError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            problems.append(f"the run's CLIP / sound encoder: {first}; skipping clip")
    return Extractors(nets, clip, sound_clip, clip_id, run.config["n_mels"], device), problems


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
    clip_id = _digest(ident)[:12]
    return frozen.clip, frozen.sound_clip, clip_id


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; writes metrics.json and metrics.md into cfg.out and returns the json."""
    rt = runtime.setup(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = checkpoint_folder(cfg.checkpoint)
    latents, G, config = load_run(folder, rt.device)
    resolution = int(config["generator_kwargs"]["img_resolution"])
    digest = file_sha256(folder / "model.safetensors")[:16]
    run = Run(folder, config, digest, resolution, latents, G)
    n = count_clips(cfg.shards, cfg.num_videos)
    if n < 2:
        raise UsageError(f"--shards {cfg.shards}: {n} clip(s); the metrics need at least 2")
    ex, problems = _extractors(cfg, run, rt.device)
    for line in problems:
        print(line, file=sys.stderr)
    shown = table_rows(cfg)
    protocol = {"fps": cfg.fps, "frames": cfg.frames, "resolution": run.resolution}
    corpus = _corpus_digest(cfg.shards)
    rows: dict[str, dict] = {}
    with stage_progress(cfg.quiet) as bars:
        for row in shown:
            fp = {"row": row, "corpus": corpus, **protocol}
            if row != "real":
                fp |= {"run": run.digest, "seed": cfg.seed}
            cache = FeatureCache(out / "cache", row, fp)
            names = feature_names(cfg, ex, row)
            keys = _extract_row(cfg, ex, run, row, names, cache, n, bars)
            rows[row] = _row_metrics(names, cache, keys)
        if "fvd" in cfg.metrics and "i3d" in ex.nets:
            ref = rows["real"]["_i3d"]
            train = _train_gaussian(cfg, ex, run, protocol, bars, problems)
            rows["real"]["fvd"] = None if train is None else frechet_distance(train, ref)
            for row in shown:
                if row != "real":
                    rows[row]["fvd"] = frechet_distance(rows[row]["_i3d"], ref)
    for r in rows.values():
        r.pop("_i3d", None)
    result = {
        "checkpoint": str(folder),
        "shards": cfg.shards,
        "videos": n,
        "seed": cfg.seed,
        "protocol": protocol_text(cfg, n),
        "networks": {k: v.sha256 for k, v in ex.nets.items()},
        "skipped": problems,
        "rows": rows,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "metrics.md").write_text(metrics_markdown(result, cfg.metrics, shown))
    return result


def video_splits(n: int) -> int:
    """IS splits of n videos: 10, fewer when there are under 20 (at least 2 videos a split)."""
    return max(1, min(SPLITS, n // 2))


def table_rows(cfg: EvalConfig) -> tuple[str, ...]:
    """The rows evaluated: those asked for, plus the real clips whenever FVD needs them."""
    return tuple(r for r in ROWS if r in cfg.rows or (r == "real" and "fvd" in cfg.metrics))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _extract_row(cfg, ex, run, row, names, cache, n, bars) -> list[str]:
    """Features of every clip of a row that the cache lacks (its video generated, then the
    features extracted, each clip on a worker thread); returns the clip keys in order."""
    made = "generate + features" if row != "real" else "features"
    task = bars.add_task(f"{made} {row}", total=n)

    def work(clip: Clip) -> tuple[str, dict[str, np.ndarray]]:
        todo = cache.missing(clip.key, names)
        if not todo:
            return clip.key, {}
        real = clip.frames(cfg.fps, run.resolution)
        if row == "real":
            video = real
        elif row == "interp":
            psi = run.config["model"]["truncation"]
            video = interpolate(run.G, psi, clip_seed(cfg.seed, clip.key), clip.steps(cfg.fps))
        else:
            video = sound_video(cfg, run, clip, row)
        return clip.key, compute_features(todo, ex, cfg, clip, video, real)

    keys = []
    for key, values in bounded_map(work, iter_clips(cfg.shards, n), cfg.workers):
        cache.put(key, values)
        keys.append(key)
        bars.advance(task)
    cache.save()
    return keys


def _row_metrics(names: list[str], cache: FeatureCache, keys: list[str]) -> dict[str, Any]:
    def stack(kind: str) -> np.ndarray | None:
        name = next((x for x in names if x.split("-")[0] == kind), None)
        return None if name is None else np.stack([cache.get(k, name) for k in keys])

    def score(probs: np.ndarray, splits: int) -> dict[str, float]:
        mean, std = inception_score(probs, splits)
        return {"mean": mean, "std": std}

    res: dict[str, Any] = {}
    if (f := stack("i3d")) is not None:
        res["_i3d"] = fit_gaussian(f)
    if (p := stack("inception")) is not None:
        res["is_frame"] = score(p.reshape(-1, p.shape[-1]), SPLITS)
    if (p := stack("c3d")) is not None:
        res["is_video"] = score(p, video_splits(len(p)))
    if (v := stack("clipvideo")) is not None:
        res["clip_text"] = clip_similarity(v, stack("cliptext"))
        res["clip_audio"] = clip_similarity(v, stack("clipaudio"))
    for kind in ("avalign", "mse", "lpips"):
        if (x := stack(kind)) is not None:
            res["av_align" if kind == "avalign" else kind] = float(x.mean())
    return res


def train_pattern(shards: str) -> str:
    """The train shards beside test shards: `test-` becomes `train-` in the file-name part."""
    head, sep, name = shards.rpartition("/")
    return head + sep + name.replace("test-", "train-")


def _train_gaussian(cfg: EvalConfig, ex: Extractors, run: Run, protocol: dict, bars, problems):
    """I3D Gaussian of real train clips, for the FVD floor (None, and a line in `problems`,
    without train shards)."""
    train = cfg.train_shards or train_pattern(cfg.shards)
    try:
        m = count_clips(train, cfg.num_videos)
    except FileNotFoundError as e:
        problems.append(f"--train-shards: {e}; no FVD floor (real train vs real test)")
        print(problems[-1], file=sys.stderr)
        return None
    names = [x for x in feature_names(cfg, ex, "real") if x.startswith("i3d-")]
    fp = {"row": "real", "corpus": _corpus_digest(train), **protocol}
    cache = FeatureCache(Path(cfg.out) / "cache", "real-train", fp)
    sub = EvalConfig(**{**asdict(cfg), "shards": train})
    keys = _extract_row(sub, ex, run, "real", names, cache, m, bars)
    return fit_gaussian(np.stack([cache.get(k, names[0]) for k in keys]))


# ----------------------------------------------------------------------------------------------
# Reports


def protocol_text(cfg: EvalConfig, n: int) -> dict[str, str]:
    fewer = "" if n >= STYLEGAN_V_VIDEOS else f" (fewer than StyleGAN-V's {STYLEGAN_V_VIDEOS})"
    frames = f"{cfg.frames} consecutive frames at {cfg.fps:g} fps"
    return {
        "fvd": f"StyleGAN-V: I3D (i3d_torchscript.pt) 400-d features, {frames}, resized to 224 "
        f"inside the network, {n} videos{fewer}; float64 Fréchet distance (scipy sqrtm); "
        "real row: real train clips vs real test clips",
        "is_frame": f"Inception-v3 FID graph (inception-2015-12-05.pt), {frames} of each of {n} "
        f"videos at 299 ({n * cfg.frames} images), {SPLITS} splits",
        "is_video": f"C3D UCF-101 (c3d_ucf101.pt), {frames}, 128 then centre crop 112, {n} videos, "
        f"{video_splits(n)} splits",
        "clip": f"run's CLIP: mean of the image embeddings of {frames} vs the class prompt's text "
        f"embedding / the run's sound encoder on the clip's audio; cosine, mean over {n} videos",
        "av_align": f"Yariv et al.: librosa-default onsets vs Farneback flow peaks (>= {cfg.min_flow:g} "
        f"px) over the whole clip at {cfg.fps:g} fps, match within 1 frame, IoU; mean over {n} videos",
        "recon": f"the clip's own frames vs the video from its sound, {frames}, MSE in [-1, 1] and "
        "LPIPS (AlexNet v0.1; frames under 64 px upsampled to 64); mean over videos",
    }


PUBLISHED = (
    "Published Landscape numbers (other protocols; quote with their sources): seed paper FVD 291.88, "
    "IS 1.82, CLIP text<->video 0.2556, audio<->video 0.1897, LPIPS 0.432, MSE 0.048; TempoTokens "
    "FVD 784, IS (C3D) 4.49, AV-Align 0.54; MM-Diffusion FVD 922, IS 2.85; ASVA FVD 449.6."
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def metrics_markdown(result: dict, metrics: tuple[str, ...], shown: tuple[str, ...]) -> str:
    rows, proto = result["rows"], result["protocol"]
    tables = [
        ("Table 2: video quality", [("FVD ↓", "fvd", "fvd"), ("IS (Inception, frames) ↑", "is_frame", "is_frame"),
                                    ("IS (C3D, video) ↑", "is_video", "is_video"), ("AV-Align ↑", "av_align", "av_align")]),
        ("Table 3a: CLIP similarity", [("text ↔ video ↑", "clip_text", "clip"), ("audio ↔ video ↑", "clip_audio", "clip")]),
        ("Table 3b: reconstruction", [("LPIPS ↓", "lpips", "recon"), ("MSE ↓", "mse", "recon")]),
    ]  # fmt: skip
    lines = [f"# Evaluation of {result['checkpoint']}", "",
             f"{result['videos']} test clips of `{result['shards']}`, seed {result['seed']}.", ""]  # fmt: skip
    for title, cols in tables:
        cols = [c for c in cols if c[2] in metrics]
        if not cols:
            continue
        lines += [f"## {title}", "", "| | " + " | ".join(c[0] for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]  # fmt: skip
        for row in shown:
            lines.append(
                f"| {ROW_TITLES[row]} | "
                + " | ".join(_fmt(rows[row].get(c[1])) for c in cols)
                + " |"
            )
        groups = dict.fromkeys(c[2] for c in cols)
        lines += (
            [""]
            + [f"- {', '.join(c[0][:-2] for c in cols if c[2] == g)}: {proto[g]}" for g in groups]
            + [""]
        )
    if result["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result["skipped"]] + [""]
    return "\n".join(lines + [PUBLISHED, ""])


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
        Flag("checkpoint", "Run folder (its newest checkpoint) or a checkpoint folder.",
             exists=True, required=True),
        Flag("shards", "Test shards: brace pattern or glob.", required=True),
        Flag("train_shards", "Real train clips for the FVD floor "
             "(default: --shards with test- -> train-)."),
        Flag("weights", "Folder of the feature networks (README: Evaluate)."),
        Flag("out", "Output folder (cache, metrics)."),
        Flag("num_videos", "Test clips evaluated (at least 2)."),
        Flag("metrics", "Comma list of " + ",".join(METRICS) + "."),
        Flag("rows", "Rows of the tables: comma list of " + ",".join(ROWS) + ".",
             name="--baselines"),
        Flag("seed", "Seed of the generated videos."),
        Flag("fps", "Frames per second of generated and real videos."),
        Flag("frames", "Consecutive frames per video for FVD, IS, CLIP and reconstruction."),
        Flag("device", "Where to run.", choices=runtime.DEVICES),
        Flag("workers", "Threads decoding clips and extracting their features."),
        Flag("quiet", "No progress bars."),
    ],
)  # fmt: skip
def cli(cfg: EvalConfig) -> None:
    """Generate videos for the test clips' sounds and compute the paper's metrics and baselines."""
    cfg.metrics = _choices(cfg.metrics, METRICS, "--metrics")
    cfg.rows = _choices(cfg.rows, ROWS, "--baselines")
    for flag, value, least in (("--num-videos", cfg.num_videos, 2), ("--frames", cfg.frames, 1),
                               ("--workers", cfg.workers, 1)):  # fmt: skip
        if value < least:
            raise UsageError(f"{flag} {value}: must be at least {least}")
    if cfg.fps <= 0:
        raise UsageError(f"--fps {cfg.fps}: must be positive")
    try:
        expand_shards(cfg.shards)
    except FileNotFoundError as e:
        raise UsageError(f"--shards: {e}") from None
    result = evaluate(cfg)
    print(json.dumps(result["rows"], indent=2, sort_keys=True))
    print(f"{cfg.out}/metrics.json, {cfg.out}/metrics.md written")


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
