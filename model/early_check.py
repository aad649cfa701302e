"""A model command's command line, checked before the command's heavy imports.

torch, torchvision, PyAV and the model take 30-70 s to import on a loaded machine; a command that
imported them before finding that `--checkpoint runs/nope` does not exist kept its user waiting a
minute for one line. Each command module calls `check_command_line` first thing, before those
imports: where it runs as the program (`python -m model.generate ...`), the files, folders and shard
patterns that the command line names must exist, else one `Error:` line and exit 2 (the code of a
wrong command line, `model.config.UsageError`), as the full check after the imports would say it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from model.shards import expand_shards

KINDS = ("file", "folder", "path", "shards")
"""What a flag names: a file, a folder, either, or shards (a brace pattern or glob)."""


def _values(argv: Sequence[str], flag: str) -> list[str]:
    """The values given to `flag` in `argv` (`--flag VALUE` or `--flag=VALUE`), in order."""
    values = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(flag + "="):
            values.append(arg[len(flag) + 1 :])
    return values


def problem(flag: str, kind: str, value: str) -> str | None:
    """Why `value` of `flag` (which names a `kind`) cannot be used, None if it can."""
    path = Path(value).expanduser()
    if kind == "file" and not path.is_file():
        return f"{flag} {value}: " + ("a folder, not a file" if path.is_dir() else "no such file")
    if kind == "folder" and not path.is_dir():
        return f"{flag} {value}: " + (
            "a file, not a folder" if path.is_file() else "no such folder"
        )
    if kind == "path" and not path.exists():
        return f"{flag} {value}: no such file or folder"
    if kind == "shards":
        try:
            expand_shards(value)
        except FileNotFoundError as e:
            return f"{flag}: {e}"
    return None


def check_command_line(
    module: str, flags: Mapping[str, str], argv: Sequence[str] | None = None
) -> None:
    """Where `module` (the caller's `__name__`) is "__main__": each flag of `flags` (flag ->
    kind of `KINDS`) given in `argv` (default: the command line) must name what it says; the first
    that does not ends the program with one `Error:` line and exit 2. `--help` is left alone."""
    if module != "__main__":
        return
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        return
    for flag, kind in flags.items():
        assert kind in KINDS, kind
        for value in _values(argv, flag):
            why = problem(flag, kind, value)
            if why:
                print(f"Error: {why}", file=sys.stderr)
                raise SystemExit(2)
