"""`Outcome`: what became of one source in a build. The per-source stages make it, the engines
report it, the sample store commits and reloads it, and the manifests are written from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from landscape_av.schema import SampleMeta
from landscape_av.sources.source_list import Source

STATUSES = ("clipped", "rejected", "failed")
"""What can become of a source: clips, a rejection by the filter, or a failure at some stage."""


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
