"""`Outcome`: what became of one source in a build. The per-source stages make it, the engines
report it, the sample store commits and reloads it, and the manifests are written from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from landscape_av.schema import SOURCE_STATUSES, SampleMeta
from landscape_av.sources.source_list import Source

STATUSES = SOURCE_STATUSES
"""What can become of a source: clips; a rejection by the filter (a property of the source);
`lost`: the video is gone from its site (private, removed: `download.LOST_REASONS`), which a
source list accrues with time, kept and not retried unless asked (`--retry-lost`); or a failure at
some stage, retried by the next run."""


@dataclass
class Outcome:
    """What became of one source: `status` is one of `STATUSES`; `stage`, `reason` and `detail`
    say why a source gave no clip."""

    source: Source
    split: str
    status: str
    stage: str = ""
    reason: str = ""
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # probe facts, span, loudness, motion
    clips: list[SampleMeta] = field(default_factory=list)
    rejected_clips: list[dict[str, Any]] = field(default_factory=list)  # by curation (`curate`)
