"""The on-disk contract of a built corpus: folder layout, shard members, sample metadata, manifests.

Everything that reads a built corpus (the card, `stats`, `verify`, `load_dataset`, the model's data
loader) follows this module; everything that writes one (the build) produces exactly this.

Layout of a corpus folder `OUT` (default `./landscape-av`)::

    OUT/README.md                     dataset card (Hugging Face front matter + sections)
    OUT/data/{split}-{index:06d}.tar  WebDataset shards, one sample per 10 s clip
    OUT/manifests/{name}.parquet|csv  sources, clips, shards, failures (same rows in both formats)
    OUT/figures/*.png                 plots written by the build and by `stats`
    OUT/build.json                    the build's settings and tool versions
    OUT/.work/                        resumable intermediate state (not part of the dataset)

A shard member is `<key>.<ext>`; keys never contain dots. Members of every sample:
`mp4` (H.264 video + AAC audio), `flac` (the audio alone), `json` (`SampleMeta`), `jpg` (thumbnail).
"""

from __future__ import annotations

import re
from typing import TypedDict

SPLITS: tuple[str, ...] = ("train", "test")
DATA_DIR = "data"
MANIFEST_DIR = "manifests"
FIGURES_DIR = "figures"
WORK_DIR = ".work"
CARD_FILE = "README.md"
BUILD_FILE = "build.json"
DEFAULT_OUT = "landscape-av"

MEMBERS: tuple[str, ...] = ("mp4", "flac", "json", "jpg")
HASHED_MEMBERS: tuple[str, ...] = ("mp4", "flac", "jpg")
"""Members whose sha256 is stored inside the sample's own json (the json's hash is in the clips manifest)."""

SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Allowed source ids: YouTube-style characters only, so that keys stay dot-free and path-safe."""

MANIFESTS: tuple[str, ...] = ("sources", "clips", "shards", "failures")


def shard_name(split: str, index: int) -> str:
    """`train-000003.tar`: file name of a split's index-th shard (inside `DATA_DIR`)."""
    return f"{split}-{index:06d}.tar"


def shard_glob(split: str) -> str:
    """Glob of a split's shards relative to the corpus folder: `data/train-*.tar`."""
    return f"{DATA_DIR}/{split}-*.tar"


def sample_key(source_id: str, clip_index: int) -> str:
    """Key of a source's clip_index-th clip: `<source_id>_<clip_index:02d>` (no dots)."""
    return f"{source_id}_{clip_index:02d}"


SampleMeta = TypedDict(
    "SampleMeta",
    {
        "key": str,
        "class": str,  # one of landscape_av.classes.CLASSES
        "label": int,  # index into CLASSES
        "source_id": str,
        "url": str,
        "split": str,  # one of SPLITS
        "clip_index": int,  # 0-based position of the clip within its source
        "start": float,  # clip start within the source video, seconds
        "end": float,  # start + duration
        "duration": float,  # seconds of video and of audio (10.0 by default)
        "fps": float,
        "width": int,
        "height": int,
        "num_frames": int,  # video frames in the mp4 (duration * fps)
        "sample_rate": int,
        "channels": int,
        "num_samples": int,  # audio samples per channel in the flac (duration * sample_rate)
        "loudness_db": float,  # RMS level of the clip's audio, dBFS
        "motion": float,  # mean absolute frame difference of the clip, 0..1
        "license": str,
        "attribution": str,
        "sha256": dict[str, str],  # member extension -> sha256 hex of its bytes (HASHED_MEMBERS)
    },
)
"""The `json` member of a sample."""


FAILURE_STAGES: tuple[str, ...] = ("manifest", "download", "probe", "filter", "clip", "shard")

REJECT_REASONS: dict[str, str] = {
    "low_resolution": "smaller than the minimum width x height",
    "no_audio": "no audio stream",
    "too_short": "shorter than one clip",
    "silent": "audio level below the floor",
    "frozen": "frame difference below the floor (a still picture)",
}
"""Filter rejection reasons (stage 'filter'); each rejected source gets exactly one."""
