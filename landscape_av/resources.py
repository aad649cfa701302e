"""Files shipped with the package: the dataset-card template and the shipped source lists."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def card_template(name: str = "landscape-av.md") -> Traversable:
    """The dataset-card template `cards/<name>`."""
    return files("landscape_av._cards") / name


def shipped_source_list(name: str) -> Traversable:
    """A source list shipped in `manifests/<name>`."""
    return files("landscape_av._manifests") / name
