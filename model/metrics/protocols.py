"""Evaluation protocols as named records: which network, which frames, which code variant.

A published number is only comparable under the protocol it was made with, so every figure of
`model.evaluate` is printed and stored beside the `Protocol` that made it (its `record()`, with the
network file's sha256 filled in at run time). The frame pickers below turn a video of `n` frames at
its own rate into the frame indices a protocol scores.

    fvd2048_16f    StyleGAN-V's FVD (src/metrics/frechet_video_distance.py, metric_utils.py,
                   training/dataset.py): 16 consecutive frames at the video's own rate; real clips
                   from a random offset (seeded here, per clip), generated videos from their first
                   frame (StyleGAN-V's generator-as-dataset path); uint8 frames; I3D with
                   rescale=True, resize=True; biased covariance; 2048 videos, up to 2048 real clips.
    asva_fvd       ASVA / AVSyncD's FVD (lzhangbj/ASVA avgen/evaluations: eval.py, fvd/compute_fvd.py,
                   dists.py; avgen/data/utils.py): 3 windows per video, starting at
                   linspace(0, duration - 2 s, 3), of 12 frames at 6 fps (the first frame at or after
                   each 1/6 s step, the last repeated when short), 256 px, bicubic (antialiased) to
                   224 by the harness, I3D with rescale=False, resize=False on [-1, 1]; np.cov
                   (unbiased) covariance; real clips: the test videos.
    is_nvidia      NVIDIA stylegan3's frame IS (metrics/inception_score.py): one image per video (its
                   middle frame, so that the images are independent), in video order, no shuffle,
                   10 contiguous splits, Inception-v3 with no_output_bias=True.
    isv2048_ucf    StyleGAN-V's video IS (src/metrics/video_inception_score.py): the first 16 frames,
                   C3D (UCF-101), RandomState(42) shuffle, 10 splits, 2048 videos.
    clip_sim       the seed paper's Table 3a: mean CLIP image embedding of the first 16 frames vs the
                   class prompt's text embedding and the run's sound embedding, cosine.
    av_align,      TempoTokens' av_align.py at its 2025 fix and at its 2023 release
    av_align_2023  (`model.metrics.av_align`): the whole video at its own rate and its own sound.
    source         this project's: the first 16 frames of a generated video vs the real clip's
                   frames at the same times, MSE on [-1, 1] and LPIPS-AlexNet.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Protocol:
    name: str
    metric: str  # the metric it computes (model.evaluate.METRICS)
    source: str  # the code it follows
    network: str | None  # key of model.metrics.networks.NETWORKS (None: no network)
    frames: int | None  # frames per window (None: the whole video)
    rate: str  # the frame rate the frames are taken at
    offset: str  # where windows start
    windows: int  # windows per video
    resolution: int  # frames are resized (short side, centre crop) to this before the network
    videos: int  # generated videos of the published protocol
    real: str  # real clips it compares with
    variant: str  # what else of the code matters
    published: str  # the published Landscape number it reproduces, with its source ("" if none)

    def record(self, sha256: dict[str, str] | None = None, standin: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["network_sha256"] = sha256 or {}
        if standin:
            out["standin"] = True
        return out


STYLEGAN_V_VIDEOS = 2048
SPLITS = 10

FVD = Protocol(
    name="fvd2048_16f",
    metric="fvd",
    source="StyleGAN-V src/metrics/frechet_video_distance.py, metric_utils.py, training/dataset.py",
    network="i3d",
    frames=16,
    rate="the video's own",
    offset="real clips: seeded random offset per clip; generated videos: frame 0",
    windows=1,
    resolution=256,
    videos=STYLEGAN_V_VIDEOS,
    real="up to 2048 real test clips",
    variant="uint8 frames (generated: x * 127.5 + 128, clamped, truncated); I3D rescale=True, "
    "resize=True, 400-d features; float64 biased covariance; scipy sqrtm, real part",
    published="none known on Landscape: the harness's default yardstick (most video papers since "
    "2022 report StyleGAN-V's FVD on their own data)",
)
ASVA_FVD = Protocol(
    name="asva_fvd",
    metric="fvd",
    source="lzhangbj/ASVA avgen/evaluations/eval.py, fvd/compute_fvd.py, dists.py; avgen/data/utils.py",
    network="i3d",
    frames=12,
    rate="6 fps",
    offset="3 windows per video at linspace(0, duration - 2 s, 3)",
    windows=3,
    resolution=256,
    videos=0,
    real="every real test clip (3 windows each)",
    variant="frames bicubic (antialias) to 224, [-1, 1]; I3D rescale=False, resize=False; "
    "np.cov (unbiased) covariance; scipy sqrtm. ASVA animates 2 s clips from their first frame; "
    "here windows are cut from whole videos",
    published="AVSyncD, Landscapes: FVD 449.59 (audio guidance 4.0; ASVA README, ECCV'24: 449.6)",
)
IS_FRAME = Protocol(
    name="is_nvidia",
    metric="is_frame",
    source="NVlabs/stylegan3 metrics/inception_score.py, metric_utils.py",
    network="inception",
    frames=1,
    rate="the video's own",
    offset="the middle frame of each video (one independent image per video)",
    windows=1,
    resolution=256,
    videos=50000,
    real="none",
    variant="Inception-v3 (TF 2015-12-05 graph) no_output_bias=True; images in video order, "
    "no shuffle; 10 contiguous splits (fewer under 20 videos)",
    published="",
)
IS_VIDEO = Protocol(
    name="isv2048_ucf",
    metric="is_video",
    source="StyleGAN-V src/metrics/video_inception_score.py",
    network="c3d",
    frames=16,
    rate="the video's own",
    offset="frame 0",
    windows=1,
    resolution=256,
    videos=STYLEGAN_V_VIDEOS,
    real="none",
    variant="C3D (UCF-101) resizes to 128 and crops 112 itself; RandomState(42) shuffle; "
    "10 splits (fewer under 20 videos)",
    published="",
)
CLIP = Protocol(
    name="clip_sim",
    metric="clip",
    source="the seed paper (Lee et al., ECCV 2022), sec. 4.3, Table 3a",
    network=None,
    frames=16,
    rate="the video's own",
    offset="frame 0 (all frames when fewer)",
    windows=1,
    resolution=256,
    videos=0,
    real="none",
    variant="the run's CLIP and sound encoder: mean image embedding vs the class prompt's text "
    "embedding / the sound's embedding; cosine, mean over videos",
    published="seed paper, Landscape: text-video 0.2556, audio-video 0.1897 (their CLIP and encoder)",
)
AV_ALIGN = Protocol(
    name="av_align",
    metric="av_align",
    source="guyyariv/TempoTokens av_align.py at commit bf0b1e3 (2025)",
    network=None,
    frames=None,
    rate="the video's own",
    offset="the whole video",
    windows=1,
    resolution=0,
    videos=0,
    real="none: each video against its own sound",
    variant="librosa onsets at 22.05 kHz; Farneback flow peaks >= 0.1 px at the video's own size; "
    "one-to-one matching, strict window of one frame",
    published="",
)
AV_ALIGN_2023 = replace(
    AV_ALIGN,
    name="av_align_2023",
    metric="av_align_2023",
    source="guyyariv/TempoTokens av_align.py at commit 34d9502 (2023)",
    variant="librosa onsets at 22.05 kHz; every Farneback flow peak; a video peak may match several "
    "onsets (scores can exceed 1)",
    published="TempoTokens (AAAI'24), Landscape: AV-Align 0.54 (its own videos, this variant)",
)
SOURCE = Protocol(
    name="source",
    metric="source",
    source="this project (model.metrics.source_distance); not the seed paper's Table 3b",
    network="lpips",
    frames=16,
    rate="the generated video's own",
    offset="frame 0; the real clip's frames shown at the same times",
    windows=1,
    resolution=256,
    videos=0,
    real="the clip whose sound made each video",
    variant="MSE on [-1, 1]; LPIPS-AlexNet v0.1 per frame (frames under 64 px upsampled to 64)",
    published="",
)
PROTOCOLS = {
    p.name: p for p in (FVD, ASVA_FVD, IS_FRAME, IS_VIDEO, CLIP, AV_ALIGN, AV_ALIGN_2023, SOURCE)
}
I3D_MIN_FRAMES = 9
"""The TorchScript I3D pools 9 frames at its deepest layer: shorter clips do not go through it."""


def with_frames(p: Protocol, frames: int, resolution: int) -> Protocol:
    """StyleGAN-V's FVD (or another protocol) at another window length and resolution: the name
    says the frames (`fvd2048_16f` -> `fvd2048_10f`)."""
    name = p.name.replace(f"_{p.frames}f", f"_{frames}f") if p.frames else p.name
    res = resolution if p.resolution else 0
    return replace(p, name=name, frames=frames, resolution=res)


def video_splits(n: int) -> int:
    """IS splits of n samples: 10, fewer when there are under 20 (at least 2 samples a split)."""
    return max(1, min(SPLITS, n // 2))


def clip_offset(seed: int, key: str, n: int, frames: int) -> int:
    """StyleGAN-V's `random.randint(0, n - frames)` for a real clip, seeded by (seed, key)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).randint(0, n - frames)


def consecutive(n: int, frames: int, offset: int = 0) -> np.ndarray | None:
    """Indices of `frames` consecutive frames from `offset`; None when the video is too short."""
    if n < offset + frames:
        return None
    return np.arange(offset, offset + frames)


def asva_windows(n: int, fps: float, frames: int = 12, rate: float = 6.0, windows: int = 3):
    """ASVA's `load_av_clips_uniformly` on a video of n frames at `fps` (frame i shown at i / fps):
    [windows, frames] indices; None when the video is shorter than one window or slower than
    `rate` (ASVA would repeat frames)."""
    clip = frames / rate
    duration = n / fps
    if duration < clip or fps < rate * (1 - 1e-6):
        return None
    starts = [(duration - clip) / 2] if windows == 1 else np.linspace(0, duration - clip, windows)
    out = []
    for start in starts:
        picked: list[int] = []
        target = start
        for i in range(n):
            t = i / fps
            if t < start - 1e-9:
                continue
            if t > start + clip + 0.5 / rate or len(picked) == frames:
                break
            if t >= target - 1e-9:
                picked.append(i)
                target += 1 / rate
        picked += [picked[-1]] * (frames - len(picked))
        out.append(picked)
    return np.asarray(out)


def middle_frame(n: int) -> int:
    return n // 2


def frames_at(times: np.ndarray, n: int, fps: float) -> np.ndarray:
    """Indices of the frames (n at `fps`) shown at `times`: the first at or after each time."""
    return np.minimum(np.ceil(np.asarray(times) * fps - 1e-6).astype(int), n - 1)
