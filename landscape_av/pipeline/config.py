"""`BuildConfig`: every option of a build, one field per setting (`settings.setting`), nesting
each stage's own options dataclass (download, filter, clip, curate, shard). The CLI's options and the
settings recorded in build.json are its flat names (`settings.flat_settings`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape_av.pipeline.clip import ClipOptions
from landscape_av.pipeline.curate import CurateOptions
from landscape_av.pipeline.download import DownloadOptions
from landscape_av.pipeline.filters import FilterOptions
from landscape_av.pipeline.settings import recorded_settings, setting
from landscape_av.pipeline.shard import ShardOptions
from landscape_av.schema import DEFAULT_OUT


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class BuildConfig:
    """Every build option, with the defaults of the published corpus: each stage's own options
    (the clip length and count are the clip stage's, the minimum size the filter's; download and
    filter read them from there), the split, and how the build runs."""

    out: Path = setting(
        Path(DEFAULT_OUT),
        path="folder",
        show=DEFAULT_OUT,
        recorded=False,
        help="Corpus folder, or an fsspec URL (s3://bucket/prefix).",
    )
    workers: int = setting(
        factory=_cores,
        low=1,
        show="CPU cores",
        recorded=False,
        help="Sources clipped at once (each encoder uses one core).",
    )
    downloads: int = setting(  # network-bound; sites throttle many at once
        2,
        low=1,
        recorded=False,
        help="Sources fetched at once, while others are clipped (with --engine ray: per node).",
    )
    engine: str = setting(
        "local",
        choices=("local", "ray"),
        recorded=False,
        help="Where sources are processed: this machine's threads, or Ray tasks on a cluster.",
    )
    ray_address: str = setting(
        "auto",
        recorded=False,
        help="--engine ray: the cluster (host:port); auto: the running one, else a new local one.",
    )
    cpus_per_source: float = setting(
        1.0,
        low=0,
        low_open=True,
        recorded=False,
        help="--engine ray: CPUs each source's task holds.",
    )
    download: DownloadOptions = field(default_factory=DownloadOptions)
    filter: FilterOptions = field(default_factory=FilterOptions)
    clip: ClipOptions = field(default_factory=ClipOptions)
    curate: CurateOptions = field(default_factory=CurateOptions)
    shard: ShardOptions = field(default_factory=ShardOptions)
    test_fraction: float = setting(
        0.1, low=0, high=1, help="Share of sources without a split that go to test."
    )
    split_salt: str = ""
    keep_downloads: bool = setting(
        False, recorded=False, help="Keep downloaded sources after clipping."
    )
    max_failure_rate: float = setting(
        0.5,
        low=0,
        high=1,
        recorded=False,
        help="Keep the old corpus (exit 4) when a larger share of the sources fails (of those "
        "not lost).",
    )
    retry_lost: bool = setting(
        False,
        recorded=False,
        help="Try again the sources an earlier run found lost (private or removed videos).",
    )
    overwrite: bool = setting(
        False, recorded=False, help="Replace a corpus in OUT built from other sources or settings."
    )
    resume: bool = setting(
        False, recorded=False, help="Only continue an earlier run of this same build in OUT."
    )
    verbose: bool = setting(
        False,
        recorded=False,
        help="Show yt-dlp's and ffmpeg's messages (else: OUT/.work/build.log).",
    )
    quiet: bool = setting(False, recorded=False)

    def to_json(self) -> dict[str, Any]:
        """Settings recorded in build.json, by flat name: those that shape the corpus, not where it
        is written or how fast (no machine-specific values)."""
        return {n: leaf.value for n, leaf in recorded_settings(self).items()}

    def output_fingerprint(self) -> dict[str, Any]:
        """Settings that decide the committed samples; a change invalidates them."""
        return {
            name: leaf.value
            for name, leaf in recorded_settings(self).items()
            if leaf.path[0] in ("clip", "filter", "curate")
            or name in ("test_fraction", "split_salt")
        }
