"""Build settings that describe themselves: `setting(...)` is a dataclass field whose `Setting`
metadata names it in build.json and, where it has a help text, as a command-line option.

The stages' options dataclasses (download, filters, clip, shard) and `BuildConfig`, which nests
them, declare their fields with it; `flat_settings` walks such a tree into one flat namespace
(`clip_seconds`, `min_width`, `download_timeout`...), from which the CLI makes its options and
`build.json` its record, and `from_flat` builds the tree back from such values.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import MISSING, dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """How a field appears outside its dataclass.

    `name`: its flat name, in build.json and in the CLI (default: the field's own name); `help`:
    the option's help ("" for no option of its own); `flag`: the option's flag when not `--name`
    with dashes; `low`/`high`/`low_open`: bounds of a number; `kind`: "size" (a WIDTHxHEIGHT
    option that sets this field and the field `pair`: `size_setting`) or "bytes" (a size like 1GB); `path`: "folder"
    or "file" (an existing one); `show`: the default as --help shows it, where not the value;
    `recorded`: whether build.json records it (settings of how fast or where a build runs do not);
    `when`: the name of a switch (a bool setting, possibly this one) without which build.json does
    not record it, so that an optional stage that is off leaves build.json as it was before the
    stage existed; `choices`: the values a text setting may take.
    """

    name: str = ""
    help: str = ""
    flag: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    kind: str = ""
    pair: str = ""
    path: str = ""
    show: str = ""
    recorded: bool = True
    when: str = ""
    choices: tuple[str, ...] = ()


def setting(default: Any = MISSING, *, factory: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field with `Setting(**meta)` as its metadata."""
    return dataclasses.field(
        default=default, default_factory=factory, metadata={"setting": Setting(**meta)}
    )


def size_setting(width: int, height_field: str, flag: str, *, help: str) -> Any:
    """The width field of a WIDTHxHEIGHT setting (default `width`): one option, `flag`, sets it
    and the field `height_field` beside it, which holds the height."""
    return setting(width, kind="size", pair=height_field, flag=flag, help=help)


@dataclass(frozen=True)
class Leaf:
    """One setting of a tree: `path` of field names from the root, its `Setting`, type and value."""

    path: tuple[str, ...]
    setting: Setting
    type: Any
    value: Any

    @property
    def name(self) -> str:
        return self.setting.name or self.path[-1]


def recorded_settings(config: Any) -> dict[str, Leaf]:
    """The leaves of `config` that build.json records: `recorded`, and their switch (`when`) on."""
    leaves = flat_settings(config)
    return {
        name: leaf
        for name, leaf in leaves.items()
        if leaf.setting.recorded and (not leaf.setting.when or leaves[leaf.setting.when].value)
    }


def flat_settings(config: Any) -> dict[str, Leaf]:
    """The leaves of a tree of settings dataclasses by flat name (nested dataclasses are walked)."""
    leaves: dict[str, Leaf] = {}
    for leaf in _walk(config, ()):
        if leaf.name in leaves:
            raise TypeError(
                f"two settings named {leaf.name!r}: {leaf.path} and {leaves[leaf.name].path}"
            )
        leaves[leaf.name] = leaf
    return leaves


def _walk(config: Any, path: tuple[str, ...]) -> Iterator[Leaf]:
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _walk(value, (*path, f.name))
        else:
            meta = f.metadata.get("setting", Setting())
            yield Leaf((*path, f.name), meta, hints[f.name], value)


def from_flat(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the settings dataclass `cls` with the `values` (by flat name) that it has;
    the others keep their defaults."""
    template = cls()
    changes: dict[tuple[str, ...], Any] = {
        leaf.path: values[name] for name, leaf in flat_settings(template).items() if name in values
    }
    return _replace(template, (), changes)


def _replace(config: Any, path: tuple[str, ...], changes: dict[tuple[str, ...], Any]) -> Any:
    fields = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        here = (*path, f.name)
        if dataclasses.is_dataclass(value):
            fields[f.name] = _replace(value, here, changes)
        elif here in changes:
            fields[f.name] = changes[here]
    return dataclasses.replace(config, **fields)
