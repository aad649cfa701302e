"""Parameter types shared by the commands."""

from __future__ import annotations

from typing import Any

import click

from landscape_av.near_miss import did_you_mean


class Choice(click.Choice):
    """`click.Choice` that names the nearest choices of a mistyped value ("did you mean ...?")."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        message = super().get_invalid_choice_message(value, ctx).rstrip(".")
        return message + did_you_mean(str(value), map(str, self.choices))
