"""Source manifests: one row per source video (`source_id,url,class,start,end,split,license,attribution`)."""

from __future__ import annotations

from dataclasses import dataclass

from .classes import label_of

MANIFEST_COLUMNS: tuple[str, ...] = (
    "source_id",
    "url",
    "class",
    "start",
    "end",
    "split",
    "license",
    "attribution",
)


@dataclass(frozen=True)
class Source:
    """One validated manifest row. `start`/`end` are seconds in the source (None: from 0 / to the end);
    `split` is None where the manifest leaves it to the build; `line` is the row's line in `manifest`."""

    source_id: str
    url: str
    class_name: str
    start: float | None = None
    end: float | None = None
    split: str | None = None
    license: str = ""
    attribution: str = ""
    manifest: str = ""
    line: int = 0

    @property
    def label(self) -> int:
        return label_of(self.class_name)
