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
from collections.abc import Collection
from typing import TypedDict

SPLITS: tuple[str, ...] = ("train", "test")
DATA_DIR = "data"
MANIFEST_DIR = "manifests"
FIGURES_DIR = "figures"
WORK_DIR = ".work"
CARD_FILE = "README.md"
BUILD_FILE = "build.json"
DEFAULT_OUT = "landscape-av"
CORPUS_ENTRIES = frozenset({DATA_DIR, MANIFEST_DIR, FIGURES_DIR, BUILD_FILE, CARD_FILE, WORK_DIR})
"""What a corpus folder may hold at its top: a build replaces such a folder whole, and `verify`
reports anything else."""

MEMBERS: tuple[str, ...] = ("mp4", "flac", "json", "jpg")
HASHED_MEMBERS: tuple[str, ...] = ("mp4", "flac", "jpg")
"""Members whose sha256 is stored inside the sample's own json (the json's hash is in the clips manifest)."""

SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Allowed source ids: YouTube-style characters only, so that keys stay dot-free and path-safe."""

SAMPLE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
"""Sample keys (`sample_key`): source id characters, so a member name holds no dot, slash or `..`."""

MAX_MEMBER_BYTES = 128 << 20
"""Largest shard member a reader loads (a 10 s 720p mp4 is about 10 MB; a prepared 256 px clip 2 MB)."""

MANIFESTS: tuple[str, ...] = ("sources", "clips", "shards", "failures")


def shard_name(split: str, index: int) -> str:
    """`train-000003.tar`: file name of a split's index-th shard (inside `DATA_DIR`)."""
    return f"{split}-{index:06d}.tar"


SHARD_FILE_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}\.tar$")
"""A shard's file name inside `DATA_DIR`, as the manifests give it (`shard_name`): no path."""


def shard_glob(split: str) -> str:
    """Glob of a split's shards relative to the corpus folder: `data/train-*.tar`."""
    return f"{DATA_DIR}/{split}-*.tar"


def split_member(name: str) -> tuple[str, str]:
    """(key, extension) of a shard member name `KEY.ext`: keys hold no dots, so the extension is
    all after the first one (`abc_00.frames.npy` -> `frames.npy`); "" where there is none."""
    key, _, ext = name.partition(".")
    return key, ext


def member_problem(name: str, size: int, max_bytes: int = MAX_MEMBER_BYTES) -> str | None:
    """Why a shard member may not be read (absolute name, `..`, a key against `SAMPLE_KEY_RE`, more
    than `max_bytes`), judged from its tar header alone; None when it may."""
    if name.startswith("/") or ".." in name:
        return "absolute name or '..' (members are <key>.<ext>)"
    key, dot, ext = name.partition(".")
    if not dot or not ext or not SAMPLE_KEY_RE.match(key):
        return f"name does not match <key>.<ext> with a key of {SAMPLE_KEY_RE.pattern}"
    if size > max_bytes:
        return f"{size:,} bytes, over the {max_bytes:,}-byte bound on a member"
    return None


def sample_key(source_id: str, clip_index: int) -> str:
    """Key of a source's clip_index-th clip: `<source_id>_<clip_index:02d>` (no dots)."""
    return f"{source_id}_{clip_index:02d}"


MEMBER_DOCS: dict[str, str] = {
    "mp4": "the clip: H.264 video with AAC audio (bytes)",
    "flac": "the clip's audio alone, lossless (bytes)",
    "json": "the sample's metadata (`SampleMeta`)",
    "jpg": "thumbnail of a mid-clip frame (image)",
}
"""What each member of `MEMBERS` holds."""

SampleMeta = TypedDict(
    "SampleMeta",
    {
        "key": str,
        "class": str,
        "label": int,
        "source_id": str,
        "url": str,
        "split": str,
        "clip_index": int,
        "start": float,
        "end": float,
        "duration": float,
        "fps": float,
        "width": int,
        "height": int,
        "num_frames": int,
        "sample_rate": int,
        "channels": int,
        "num_samples": int,
        "loudness_db": float,
        "motion": float,
        "license": str,
        "attribution": str,
        "sha256": dict[str, str],
    },
)
"""The `json` member of a sample; `SAMPLE_DOCS` says what each field holds."""

SAMPLE_DOCS: dict[str, str] = {
    "key": "sample key `<source_id>_<clip index>`",
    "class": "class name",
    "label": "class index (ClassLabel, in the order of the Classes table)",
    "source_id": "id of the source video",
    "url": "where the source video was downloaded from",
    "split": "train or test",
    "clip_index": "0-based position of the clip within its source",
    "start": "clip start within the source video, seconds",
    "end": "clip end within the source video, seconds",
    "duration": "seconds of video and of audio",
    "fps": "video frame rate",
    "width": "video width, pixels",
    "height": "video height, pixels",
    "num_frames": "video frames in the mp4",
    "sample_rate": "audio sample rate, Hz",
    "channels": "audio channels",
    "num_samples": "audio samples per channel in the flac",
    "loudness_db": "RMS level of the clip's audio, dBFS",
    "motion": "mean absolute frame difference of the clip, 0..1",
    "license": "license of the source video",
    "attribution": "author / credit line of the source video",
    "sha256": "sha256 hex of the mp4, flac and jpg members",
}
"""What each `SampleMeta` field holds (the dataset card's field table)."""


FAILURE_STAGES: tuple[str, ...] = ("manifest", "download", "probe", "filter", "clip", "shard")

REJECT_REASONS: dict[str, str] = {
    "no_video": "no video stream (an audio-only source)",
    "low_resolution": "smaller than the minimum width x height",
    "no_audio": "no audio stream",
    "too_short": "shorter than one clip",
    "silent": "audio level below the floor",
    "frozen": "frame difference below the floor (a still picture)",
}
"""Filter rejection reasons (stage 'filter'); each rejected source gets exactly one."""

CLIP_REJECT_REASONS: dict[str, str] = {
    "shot_cut": "the clip spans a shot transition (TransNetV2)",
    "speech": "speech in more than --max-speech of the clip (Silero VAD)",
}
"""Curation's rejection reasons (stage 'filter', builds with --shots / --speech), checked in this
order; each rejected clip gets exactly one, a source left without clips the first of its clips'."""


# Output manifests: column name -> type ("str", "int", "float"), in column order. The same rows are
# written as `OUT/manifests/{name}.parquet` and `.csv`; `landscape_av.corpus.manifests` reads and writes them.
SOURCE_STATUSES: tuple[str, ...] = ("clipped", "rejected", "lost", "failed")
"""`status` of a sources-manifest row: clips made; turned down by the filter; a stage failed."""

MANIFEST_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "sources": (
        ("source_id", "str"),
        ("url", "str"),
        ("class", "str"),
        ("label", "int"),
        ("split", "str"),
        ("status", "str"),  # one of SOURCE_STATUSES
        ("stage", "str"),  # FAILURE_STAGES entry where a rejected/failed source stopped, else ""
        ("reason", "str"),  # REJECT_REASONS key or failure code, else ""
        ("start", "float"),  # span of the source that was cut into clips, seconds (NaN: unknown)
        ("end", "float"),
        ("duration", "float"),  # probed duration of the downloaded file, seconds (NaN: not probed)
        ("width", "int"),  # displayed size (after rotation); 0: not probed
        ("height", "int"),
        ("fps", "float"),
        ("rotation", "int"),  # degrees of the display matrix, honoured when clipping
        ("video_codec", "str"),
        ("audio_codec", "str"),
        ("sample_rate", "int"),
        ("channels", "int"),
        (
            "loudness_db",
            "float",
        ),  # RMS level of the span's audio, dBFS (the silence filter's input)
        ("motion", "float"),  # mean abs frame difference, 0..1 (the frozen filter's input)
        ("num_clips", "int"),
        ("license", "str"),
        ("attribution", "str"),
    ),
    "clips": (
        ("key", "str"),
        ("source_id", "str"),
        ("class", "str"),
        ("label", "int"),
        ("split", "str"),
        ("clip_index", "int"),
        ("start", "float"),
        ("end", "float"),
        ("duration", "float"),
        ("fps", "float"),
        ("width", "int"),
        ("height", "int"),
        ("num_frames", "int"),
        ("sample_rate", "int"),
        ("channels", "int"),
        ("num_samples", "int"),
        ("loudness_db", "float"),
        ("motion", "float"),
        ("shard", "str"),  # file name inside DATA_DIR
        ("bytes", "int"),  # sum of the sample's member sizes
        ("sha256_mp4", "str"),
        ("sha256_flac", "str"),
        ("sha256_jpg", "str"),
        ("sha256_json", "str"),
    ),
    "shards": (
        ("shard", "str"),
        ("split", "str"),
        ("index", "int"),
        ("samples", "int"),
        ("bytes", "int"),  # size of the tar file
        ("sha256", "str"),  # of the tar file
        ("first_key", "str"),
        ("last_key", "str"),
    ),
    "failures": (
        ("source_id", "str"),
        ("url", "str"),
        ("class", "str"),
        ("stage", "str"),  # one of FAILURE_STAGES
        ("reason", "str"),  # REJECT_REASONS key (stage 'filter') or a failure code
        ("detail", "str"),  # human-readable message
    ),
}
"""Columns of each output manifest (keys: `MANIFESTS`)."""


OPTIONAL_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "sources": (
        # --shots: source times (s, 3 decimals, space-separated) where a new shot starts within the
        # clipped span, as TransNetV2 finds them
        ("shot_cuts", "str", "motion"),
    ),
    "clips": (
        ("speech", "float", "motion"),  # --speech: share of the clip that is speech, 0..1
    ),
}
"""Columns that a manifest has only where the build ran the stage that measures them: (name, type,
the column it follows). A build without the stage writes the same bytes as before it existed."""

OPTIONAL_SAMPLE_FIELDS: dict[str, tuple[type, str]] = {
    "speech": (
        float,
        "(builds with --speech) share of the clip that Silero VAD hears as speech, 0..1",
    ),
}
"""Fields of `SampleMeta` that only builds with the stage that measures them write: type, doc."""


def manifest_fields(name: str, optional: Collection[str] = ()) -> tuple[tuple[str, str], ...]:
    """(column, type) of output manifest `name` (one of `MANIFESTS`), with those of its
    `OPTIONAL_FIELDS` named in `optional`, each after its anchor column."""
    fields = list(MANIFEST_FIELDS[name])
    for column, kind, after in OPTIONAL_FIELDS.get(name, ()):
        if column in optional:
            at = next(i for i, (c, _) in enumerate(fields) if c == after)
            fields.insert(at + 1, (column, kind))
    return tuple(fields)


def manifest_columns(name: str, optional: Collection[str] = ()) -> tuple[str, ...]:
    """Column names of output manifest `name` (see `manifest_fields`)."""
    return tuple(column for column, _ in manifest_fields(name, optional))
