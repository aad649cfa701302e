"""Reproducible WebDataset shards: plain tar files with fixed metadata and a fixed member order.

Every member gets mtime 0, uid/gid 0, empty owner names and mode 0644; a sample's members appear in
sorted extension order and samples in the order given, so the same samples give the same bytes.
Shards are bounded by size and by sample count, and each is written atomically.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from landscape_av.files import atomic_path, file_sha256
from landscape_av.pipeline.settings import setting
from landscape_av.schema import shard_name

TAR_BLOCK = 512
TAR_RECORD = tarfile.RECORDSIZE  # a tar file's size is a multiple of this (10240 bytes)


@dataclass(frozen=True)
class ShardOptions:
    """Bounds of every shard (`plan_shards`)."""

    max_bytes: int = setting(
        1_000_000_000,
        name="shard_max_bytes",
        kind="bytes",
        flag="--shard-size",
        show="1GB",
        help="Largest shard.",
    )
    max_samples: int = setting(
        1000,
        name="shard_max_samples",
        flag="--shard-samples",
        low=1,
        help="Most samples per shard.",
    )


def tar_size(content_bytes: int) -> int:
    """Size of a tar whose members take `content_bytes` (headers + padded data): with the two
    end-of-archive blocks, rounded up to whole records."""
    return -(-(content_bytes + 2 * TAR_BLOCK) // TAR_RECORD) * TAR_RECORD


@dataclass(frozen=True)
class SampleFiles:
    """One sample to shard: its key, split and member files (extension -> path)."""

    key: str
    split: str
    members: Mapping[str, Path]

    @property
    def tar_bytes(self) -> int:
        """Bytes this sample takes in a tar: one header block per member plus padded contents."""
        return sum(
            TAR_BLOCK + -(-p.stat().st_size // TAR_BLOCK) * TAR_BLOCK for p in self.members.values()
        )


@dataclass(frozen=True)
class ShardPlan:
    """Samples of one shard: `split`, its `index` within the split, and the samples in order."""

    split: str
    index: int
    samples: tuple[SampleFiles, ...]

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)


def plan_shards(
    samples: Sequence[SampleFiles], max_bytes: int, max_samples: int
) -> list[ShardPlan]:
    """Group samples (already in their final order) into shards per split, a new shard starting
    whenever the next sample would pass `max_bytes` or `max_samples` (a single sample larger than
    `max_bytes` gets a shard of its own)."""
    if max_samples < 1 or max_bytes < 1:
        raise ValueError("shard bounds must be positive")
    plans: list[ShardPlan] = []
    by_split: dict[str, list[SampleFiles]] = {}
    index: Counter[str] = Counter()
    for sample in samples:
        by_split.setdefault(sample.split, []).append(sample)
    for split, items in by_split.items():
        current: list[SampleFiles] = []
        content = 0
        for sample in items:
            need = sample.tar_bytes
            full = len(current) >= max_samples or tar_size(content + need) > max_bytes
            if current and full:
                plans.append(ShardPlan(split, index[split], tuple(current)))
                index[split] += 1
                current, content = [], 0
            current.append(sample)
            content += need
        if current:
            plans.append(ShardPlan(split, index[split], tuple(current)))
            index[split] += 1
    return plans


def write_shard(plan: ShardPlan, path: Path) -> tuple[int, str]:
    """Write the shard to `path` atomically; returns (bytes, sha256 hex) of the tar file."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in plan.samples:
            for ext in sorted(sample.members):
                _add(tar, f"{sample.key}.{ext}", sample.members[ext])
    return path.stat().st_size, file_sha256(path)


def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(path, "rb") as f:
        tar.addfile(info, f)
