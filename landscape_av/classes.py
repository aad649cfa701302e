"""The nine Landscape classes, in label order (the order of the paper's class list)."""

from __future__ import annotations

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
"""Class names; a class's label index is its position here."""


def label_of(name: str) -> int:
    """Label index of a class name (exact, as in `CLASSES`); raises ValueError for an unknown name."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of: {', '.join(CLASSES)}") from None


def slug(name: str) -> str:
    """File-name form of a class name: 'waterfall burbling' -> 'waterfall_burbling'."""
    return name.replace(" ", "_")


def parse_class_selection(text: str) -> tuple[str, ...]:
    """`all` or a comma list of class names (spaces or underscores) -> class names in label order."""
    if text.strip().lower() == "all":
        return CLASSES
    wanted = {part.strip().replace("_", " ") for part in text.split(",") if part.strip()}
    if not wanted:
        raise ValueError("empty class selection; use 'all' or a comma list of class names")
    unknown = sorted(wanted - set(CLASSES))
    if unknown:
        raise ValueError(
            f"unknown class(es) {', '.join(map(repr, unknown))}; expected 'all' or any of: "
            + ", ".join(CLASSES)
        )
    return tuple(c for c in CLASSES if c in wanted)
