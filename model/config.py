"""One convention for every `python -m model...` command: a config dataclass, its flags, one-line
errors.

A command's settings are the fields of its config dataclass (nested dataclasses are sections).
They come, each later source winning, from

    the dataclass defaults < a preset flag (`--tiny`) < `--config FILE` (YAML or JSON, nested like
    the dataclass) < the command's own flags < `--set key.sub=value` (repeatable)

so every field, including one added later, is reachable through `--config` and `--set`; values
are checked against the field's type. `command()` builds the click command from a list of `Flag`s
(type, default and choices come from the dataclass), `run()` runs it as `python -m` does.

Expected failures end as one line `Error: ...` on stderr naming the file, without a traceback, and
exit 2 like click's own usage errors: `UsageError` (the command line is wrong: an unknown or
mistyped setting, a missing required one, a named file that does not exist), any other
`InputError` (shards or audio that cannot be read, a checkpoint of the wrong kind) and a
`FileNotFoundError`. `--debug` (every command has it) shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import stat
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import click
import yaml


class InputError(Exception):
    """An input the user can fix; a command reports it as one line and exits `exit_code`."""

    exit_code = 2


class UsageError(InputError, ValueError):
    """The command line is wrong: a bad, unknown or missing setting, a named file that is absent."""

    exit_code = 2


# ----------------------------------------------------------------------------------------------
# Values from files other people made, in messages and from JSON


def brief(value: Any, width: int = 60) -> str:
    """A repr of `value` in at most `width` characters, made in time and memory bounded by `width`
    whatever `value` holds (a message never formats a large container, string or number whole)."""
    text = _brief(value, 2)
    return text if len(text) <= width else text[: width - 3] + "..."


def _brief(value: Any, depth: int) -> str:
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() <= 128:
            return repr(value)
        return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    if isinstance(value, str | bytes):
        return repr(value[:64]) + ("..." if len(value) > 64 else "")
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return f"<{type(value).__name__}>"
    if depth == 0:
        return f"<{type(value).__name__} of {len(value)}>"
    more = ", ..." if len(value) > 4 else ""
    if isinstance(value, dict):
        pairs = itertools.islice(value.items(), 4)
        return (
            "{"
            + ", ".join(f"{_brief(k, depth - 1)}: {_brief(v, depth - 1)}" for k, v in pairs)
            + more
            + "}"
        )
    inner = ", ".join(_brief(v, depth - 1) for v in itertools.islice(value, 4)) + more
    return {list: f"[{inner}]", tuple: f"({inner})"}.get(
        type(value), f"{type(value).__name__}([{inner}])"
    )


JSON_BYTES = 1 << 20
"""Largest JSON config a command reads from a file others may have made (a run's is about 3 kB)."""
JSON_DEPTH = 16
"""Deepest nesting of such a file's lists and objects (a run's config nests 3 deep)."""


def read_json(path: str | Path, max_bytes: int = JSON_BYTES) -> Any:
    """The JSON value in the file `path`, read in time and memory bounded by `max_bytes`: a file
    larger than that, or that is not a regular file, is refused, and so are nesting deeper than
    `JSON_DEPTH`, NaN and infinities (not JSON, though Python writes them) and integers too long
    to convert. Raises ValueError naming the file (FileNotFoundError where it is absent)."""
    path = Path(path)
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: more than {max_bytes:,} bytes; not a config this reads")

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text[:20]} is out of a float's range")
        return value

    try:
        value = json.loads(data, parse_constant=no_constant, parse_float=finite)
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, a bad number, bytes that are not UTF-8
        raise ValueError(f"{path}: not valid JSON: {str(e)[:200]}") from None
    if _depth(value) > JSON_DEPTH:
        raise ValueError(f"{path}: nested more than {JSON_DEPTH} deep; not a config this reads")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: any depth json.loads returned)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
    return deepest


# ----------------------------------------------------------------------------------------------
# Settings of a config dataclass


def apply_overrides(obj: Any, values: Mapping[str, Any], where: str, prefix: str = "") -> None:
    """Set the fields of dataclass `obj` (and of its sections) from a nested mapping; `where`
    names the source in errors (a file, `--set`, a preset flag)."""
    names = [f.name for f in dataclasses.fields(obj)]
    hints = typing.get_type_hints(type(obj))
    for name, value in values.items():
        name = str(name).replace("-", "_")
        key = prefix + name
        if name not in names:
            known = ", ".join(prefix + k for k in names)
            raise UsageError(f"{where}: unknown setting {brief(key)} (known: {known})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise UsageError(f"{where}: {brief(key)} is a section; set {key}.NAME=VALUE")
            apply_overrides(current, value, where, key + ".")
        else:
            setattr(obj, name, coerce(hints[name], value, f"{where}: {key}"))


def set_dotted(obj: Any, assignment: str, where: str = "--set") -> None:
    """Apply one `key.sub=value`; the value is YAML (`1e-4`, `[1, 2]`, `null`), or the text
    itself for a text field (`null` unsets an optional one)."""
    key, eq, raw = assignment.partition("=")
    if not eq or not key.strip():
        raise UsageError(f"{where} {assignment!r}: expected key.sub=value")
    parts = key.strip().replace("-", "_").split(".")
    where = f"{where} {assignment}"
    key = ".".join(parts)
    tp = field_type(type(obj), key)
    value = raw if _is_text(tp) and not (raw == "null" and _optional(tp)) else _yaml(raw, where)
    apply_overrides(obj, nest(key, value), where)


def nest(key: str, value: Any) -> dict[str, Any]:
    """`a.b.c`, v -> {"a": {"b": {"c": v}}}."""
    *parents, leaf = key.split(".")
    nested = {leaf: value}
    for part in reversed(parents):
        nested = {part: nested}
    return nested


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (JSON is YAML too); an empty file is an empty mapping."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: {e}") from e
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path}: not YAML or JSON ({' '.join(str(e).split())})") from e
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings, found {brief(values)}")
    return values


def get_dotted(obj: Any, key: str) -> Any:
    """The value of the dotted field `key` of dataclass `obj`."""
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def check_ranges(obj: Any, ranges: Mapping[str, tuple[float, float]], where: str) -> None:
    """Each dotted numeric field of dataclass `obj` named in `ranges` (each item of a tuple field)
    is finite and within its (lowest, highest); an unset optional one (None) passes. Raises
    ValueError naming the field; for the values of a file, after `apply_overrides` typed them."""
    for key, (lo, hi) in ranges.items():
        value = get_dotted(obj, key)
        for v in value if isinstance(value, tuple) else (value,):
            finite = not isinstance(v, float) or math.isfinite(v)  # (an int may pass float's range)
            if v is not None and not (finite and lo <= v <= hi):
                raise ValueError(f"{where}: {key}={brief(v)} is outside [{lo:g}, {hi:g}]")


def field_type(cls: Any, key: str) -> Any:
    """The type of the dotted field `key` of dataclass `cls`; None where `key` names no field."""
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        cls = typing.get_type_hints(cls).get(part)
    return cls


def coerce(tp: Any, value: Any, what: str) -> Any:
    """`value` as type `tp` (YAML reads `1e-4` as text, lists for tuples), or a `UsageError`."""
    try:
        return _coerce(tp, value)
    except _Mismatch as e:
        raise UsageError(f"{what} expects {e}, got {brief(value)}") from None


class _Mismatch(Exception):
    pass


def _coerce(tp: Any, value: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and _optional(tp):
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(option, value)
            except _Mismatch:
                pass
        none = " or null" if _optional(tp) else ""
        raise _Mismatch(" or ".join(_describe(a) for a in options) + none)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer past float's range
                raise _Mismatch(_describe(tp)) from None
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp in (str, Path):
        if isinstance(value, str | Path) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            return tp(str(value))
    elif origin in (tuple, list) and isinstance(value, list | tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch(_describe(tp))
            return tuple(_coerce(a, v) for a, v in zip(args, value, strict=True))
        items = [_coerce(args[0], v) for v in value] if args else list(value)
        return origin(items)
    elif (origin or tp) is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin is typing.Literal:
        if value in args:
            return value
    else:
        return value
    raise _Mismatch(_describe(tp))


def _describe(tp: Any) -> str:
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        Path: "a path",
    }
    if tp in names:
        return names[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)}"
    if origin in (tuple, list):
        return "a list"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    return getattr(tp, "__name__", str(tp))


def _is_text(tp: Any) -> bool:
    return tp in (str, Path) or (
        typing.get_origin(tp) in (typing.Union, types.UnionType)
        and any(a in (str, Path) for a in typing.get_args(tp))
    )


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _yaml(raw: str, where: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UsageError(f"{where}: the value is not YAML") from None


# ----------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class Flag:
    """A command-line flag for one setting; its type, default and help text's default come from
    the config dataclass."""

    key: str  # dotted setting, e.g. "model.truncation"
    help: str
    name: str = ""  # the flag; default: `--` and the key's last part, dashed
    old: tuple[str, ...] = ()  # earlier spellings, still accepted, not shown in --help
    choices: tuple[str, ...] = ()
    required: bool = False  # must be given (by flag, --config or --set)
    exists: bool = False  # names a file or folder that must exist
    argument: bool = False  # positional (always required) instead of a flag

    @property
    def flag(self) -> str:
        """How errors name it: the flag, or an argument's metavar."""
        if self.argument:
            return self.key.upper()
        return self.name or "--" + self.key.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def dest(self) -> str:
        return "s_" + self.key.replace(".", "__")

    def within(self, section: str) -> Flag:
        """The same flag for the setting inside section `section` (`steps` -> `photo.steps`)."""
        return dataclasses.replace(self, key=f"{section}.{self.key}")


class Preset(NamedTuple):
    """A flag (`--tiny`) that applies a nested mapping of settings before `--config`."""

    help: str
    values: Mapping[str, Any]


class ModelCommand(click.Command):
    """A click command whose callback receives the built config dataclass."""

    def __init__(
        self,
        name: str,
        config: type,
        flags: Sequence[Flag],
        presets: Mapping[str, Preset],
        fn: Callable[[Any], Any],
    ):
        self.config, self.flags, self.presets = config, list(flags), dict(presets)
        defaults = config()
        params: list[click.Parameter] = [_param(f, defaults) for f in self.flags]
        params += [
            click.Option([f"--{p}", f"p_{p}"], is_flag=True, help=preset.help)
            for p, preset in self.presets.items()
        ]
        params += [
            click.Option(
                [old, f"{f.dest}__{i}"], type=_click_type(f, config), hidden=True, default=None
            )
            for f in self.flags
            for i, old in enumerate(f.old)
        ]
        params += [
            click.Option(
                ["--config", "config_file"],
                type=click.Path(dir_okay=False),
                help=f"YAML or JSON file of settings, nested like {config.__name__}.",
            ),
            click.Option(
                ["--debug"], is_flag=True, help="Show the traceback of an expected error too."
            ),
            click.Option(
                ["--set", "assignments"],
                multiple=True,
                metavar="KEY=VALUE",
                help=f"Any setting of {config.__name__}, dotted into sections (KEY.SUB=VALUE); "
                "repeatable; wins over flags and --config.",
            ),
        ]

        def callback(**values: Any) -> Any:
            try:
                return fn(self.settings_from(values))
            except (InputError, FileNotFoundError) as e:
                if values["debug"]:
                    raise
                raise _Reported(e) from None

        super().__init__(
            name,
            params=params,
            callback=callback,
            help=fn.__doc__,
            context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        )

    def settings(self, argv: Sequence[str] | None = None) -> Any:
        """The config that `argv` gives, without running the command."""
        ctx = self.make_context(self.name, list(argv or []))
        return self.settings_from(ctx.params)

    def settings_from(self, values: Mapping[str, Any]) -> Any:
        cfg = self.config()
        for p, preset in self.presets.items():
            if values[f"p_{p}"]:
                apply_overrides(cfg, preset.values, f"--{p}")
        if values["config_file"]:
            apply_overrides(cfg, read_config_file(values["config_file"]), values["config_file"])
        for f in self.flags:
            given = [values[f.dest], *(values[f"{f.dest}__{i}"] for i in range(len(f.old)))]
            given = [v for v in given if v is not None]
            if given:
                apply_overrides(cfg, nest(f.key, given[0]), f.flag)
        for assignment in values["assignments"]:
            set_dotted(cfg, assignment)
        for f in self.flags:
            value = get_dotted(cfg, f.key)
            if f.required and value in (None, ""):
                raise UsageError(f"{f.flag} is required. {f.help}")
            if f.choices and value not in f.choices:
                raise UsageError(f"{f.key}: {value!r} is not one of {', '.join(f.choices)}")
            if f.exists and value not in (None, "") and not Path(value).exists():
                raise UsageError(f"{f.flag} {value}: no such file or folder")
        return cfg


def command(
    name: str,
    config: type,
    flags: Sequence[Flag],
    presets: Mapping[str, Preset] | None = None,
) -> Callable[[Callable[[Any], Any]], ModelCommand]:
    """Decorator: `fn(cfg)` becomes a command with `flags`, `presets`, `--config` and `--set`."""
    return lambda fn: ModelCommand(name, config, flags, presets or {}, fn)


def group(name: str, help: str, commands: Sequence[click.Command]) -> click.Group:
    """Sub-commands under one name (`python -m model.stylegan3 info|sample`)."""
    return click.Group(
        name,
        commands=list(commands),
        help=help,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


def run(cmd: click.Command, argv: Sequence[str] | None = None) -> int:
    """Run `cmd` as its `python -m` entry point does: 0, or the exit code of the reported error
    (click's usage errors print their usage line too)."""
    try:
        result = cmd.main(list(argv) if argv is not None else None, standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0


class _Reported(click.ClickException):
    def __init__(self, error: Exception):
        super().__init__(" ".join(str(error).split("\n")))
        self.exit_code = getattr(error, "exit_code", 2)


def _param(f: Flag, defaults: Any) -> click.Parameter:
    tp = _click_type(f, type(defaults))
    if f.argument:
        return click.Argument([f.dest], type=tp, metavar=f.flag)
    default = get_dotted(defaults, f.key)
    shown = "" if default is None or default is False or default == "" else f" [default: {default}]"
    if tp is None:
        return click.Option([f.flag, f.dest], is_flag=True, default=None, help=f.help)
    return click.Option([f.flag, f.dest], type=tp, default=None, help=f.help + shown)


def _click_type(f: Flag, config: type) -> click.ParamType | None:
    """The click type of a flag's setting; None for a bool (an on/off flag)."""
    if f.choices:
        return click.Choice(f.choices)
    tp = field_type(config, f.key)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is bool:
        return None
    return {int: click.INT, float: click.FLOAT}.get(tp, click.STRING)
