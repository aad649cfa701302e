"""Class vocabularies: the nine Landscape classes (`CLASSES`, in the paper's order), and the
vocabulary of any corpus (`class_vocabulary`): labels index it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from landscape_av.near_miss import did_you_mean

CLASSES: tuple[str, ...] = (
    "thunderstorm",
    "waterfall burbling",
    "volcano eruption",
    "squishing water",
    "wind noise",
    "fire crackling",
    "raining",
    "underwater bubbling",
    "splashing water",
)
"""The Landscape class names; a Landscape class's label index is its position here."""


def class_vocabulary(names: Iterable[str]) -> tuple[str, ...]:
    """The class vocabulary of a source list or corpus whose rows have classes `names`: `CLASSES`
    when every name is one of the nine (so Landscape labels never move), else the sorted unique
    names (a VGGSound list keeps its own classes). A label is a position in it."""
    found = set(names)
    return CLASSES if found <= set(CLASSES) else tuple(sorted(found))


def label_of(name: str, classes: Sequence[str] = CLASSES) -> int:
    """Label index of a class name (exact) in `classes`; raises ValueError for an unknown name."""
    try:
        return list(classes).index(name)
    except ValueError:
        raise ValueError(
            f"unknown class {name!r}{did_you_mean(name, classes)}; expected one of: "
            + _listed(classes)
        ) from None


def _listed(classes: Sequence[str], most: int = 12) -> str:
    """`classes` for a message: all of them, or the first `most` and how many more."""
    more = len(classes) - most
    return ", ".join(classes[:most]) + (f" (and {more} more)" if more > 0 else "")


def slug(name: str) -> str:
    """File-name form of a class name: 'waterfall burbling' -> 'waterfall_burbling'."""
    return name.replace(" ", "_")


def parse_class_selection(text: str, classes: Sequence[str] = CLASSES) -> tuple[str, ...]:
    """`all` or a comma list of names of `classes` (underscores for spaces allowed) -> class names
    in `classes` order. A name holding commas (VGGSound's "male speech, man speaking") is matched
    whole: consecutive comma-separated parts are joined when together they name a class."""
    if text.strip().lower() == "all":
        return tuple(classes)
    known = set(classes)
    parts = text.split(",")
    wanted: set[str] = set()
    unknown: list[str] = []
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):  # the longest run of parts that names a class
            name = _known_name(",".join(parts[i:j]).strip(), known)
            if name is not None:
                wanted.add(name)
                i = j
                break
        else:
            if parts[i].strip():
                unknown.append(parts[i].strip())
            i += 1
    if unknown:
        named = ", ".join(f"{name!r}{did_you_mean(name, classes)}" for name in unknown)
        raise ValueError(f"unknown class(es) {named}; expected 'all' or any of: {_listed(classes)}")
    if not wanted:
        raise ValueError("empty class selection; use 'all' or a comma list of class names")
    return tuple(c for c in classes if c in wanted)


def _known_name(text: str, known: set[str]) -> str | None:
    """`text` as a class of `known` (as written, or with underscores read as spaces), else None."""
    for name in (text, text.replace("_", " ")):
        if name in known:
            return name
    return None
