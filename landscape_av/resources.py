"""Files shipped with the package: the dataset-card template and the source manifests."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def card_template(name: str = "landscape-av.md") -> Traversable:
    """The dataset-card template `cards/<name>`."""
    return files("landscape_av._cards") / name


def shipped_manifest(name: str) -> Traversable:
    """A source manifest shipped in `manifests/<name>`."""
    return files("landscape_av._manifests") / name
