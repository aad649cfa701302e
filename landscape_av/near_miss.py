"""Near-miss suggestions for mistyped names: "did you mean ...?" for class names, option values and
the like, wherever the CLI refuses a name it does not know."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import click


def _form(text: str) -> str:
    """How a name is compared: case, underscores and runs of spaces ignored."""
    return " ".join(text.replace("_", " ").lower().split())


def close_matches(word: str, choices: Iterable[str], most: int = 3) -> list[str]:
    """The names of `choices` nearest to `word` (difflib's ratio of at least 0.6, as click's own
    suggestions for options), nearest first; [] where none is near."""
    by_form: dict[str, str] = {}
    for choice in choices:
        by_form.setdefault(_form(choice), choice)
    near = difflib.get_close_matches(_form(word), list(by_form), n=most, cutoff=0.6)
    return [by_form[form] for form in near]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)', ' (did you mean 'x' or 'y'?)', or '' where nothing is near."""
    near = close_matches(word, choices)
    if not near:
        return ""
    return f" (did you mean {' or '.join(repr(name) for name in near)}?)"


class Choice(click.Choice):
    """`click.Choice` that names the nearest choices of a mistyped value ("did you mean ...?")."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        message = super().get_invalid_choice_message(value, ctx).rstrip(".")
        return message + did_you_mean(str(value), map(str, self.choices))
