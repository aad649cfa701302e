"""Source lists, the build's input: one row per source video
(`source_id,url,class,start,end,split,license,attribution`). The build's output tables are its
manifests (`landscape_av.corpus.manifests`), another thing.

`read_source_list` validates a whole file and reports every bad row by `file:line` in one
`SourceListError`; `select_sources` picks the rows a (partial) build uses; `write_source_list`
writes rows back atomically. Lists in other formats (VGGSound-style) are converted by
`landscape_av.sources.vggsound`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from landscape_av.classes import CLASSES, class_vocabulary, label_of
from landscape_av.csv_text import from_cell, to_cell
from landscape_av.files import RefusedFile, atomic_path, read_bounded_text
from landscape_av.schema import SOURCE_ID_RE, SPLITS

SOURCE_COLUMNS: tuple[str, ...] = (
    "source_id",
    "url",
    "class",
    "start",
    "end",
    "split",
    "license",
    "attribution",
)


MAX_LIST_BYTES = 128 * 2**20
"""Largest source list read (128 MiB: over a million rows of the published lists' length)."""
MAX_SECONDS = 86_400.0
"""Latest start or end a row may give (24 h): no source video is longer."""


_UNSAFE_CHAR = re.compile(r"[\x00-\x20\x7f]")
"""A space or control character: no URL holds one raw (RFC 3986; Python's urlsplit silently drops
tabs and newlines, yt-dlp does not)."""


def url_problem(url: str, allow_local: bool = False) -> tuple[str, str] | None:
    """(reason, message) when the build cannot download `url`, None when it can: http(s) URLs
    with a host, a port in 1-65535 where one is given, and no space or control character anywhere
    (percent-encode them); local files (file:// URLs or paths) only with `allow_local`; nothing
    that looks like a command-line option. The build and `sources check` judge rows by this one
    rule, so a row that passes `check` is one the build tries to download."""
    url = url.strip()
    if url.startswith("-"):
        return "unsupported_url", f"url {url!r} looks like a command-line option, not a URL"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as e:
        return "unsupported_url", f"url {url!r} is not a valid URL ({e})"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if m := _UNSAFE_CHAR.search(url):
            what = "a space" if m[0] == " " else f"the control character {m[0]!r}"
            message = f"url {url!r} holds {what}: percent-encode it (%20 for a space)"
            return "unsupported_url", message
        if not parts.hostname:
            return "unsupported_url", f"url {url!r} has no host"
        if port == 0:
            return "unsupported_url", f"url {url!r} has port 0, which cannot be connected to"
        return None
    if scheme == "file" or scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        if allow_local:
            return None
        return (
            "local_not_allowed",
            f"url {url!r} is a local file; pass allow_local (--allow-local) to read it",
        )
    return (
        "unsupported_url",
        f"url {url!r}: only http(s) URLs can be downloaded (and local files with --allow-local)",
    )


@dataclass(frozen=True)
class Source:
    """One validated source-list row. `start`/`end` are seconds in the source (None: from 0 / to the
    end); `split` is None where the list leaves it to the build; `line` is the row's line in the file
    `source_list`; `label` is the index of `class_name` in the build's class vocabulary, set by
    `label_sources` (None before)."""

    source_id: str
    url: str
    class_name: str
    start: float | None = None
    end: float | None = None
    split: str | None = None
    license: str = ""
    attribution: str = ""
    source_list: str = ""
    line: int = 0
    label: int | None = None


class SourceListError(ValueError):
    """A source list that cannot be used; `errors` holds one `file:line: message` per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        count = f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}"
        super().__init__(f"{count} in source list:\n" + "\n".join(self.errors))


def format_seconds(value: float | None) -> str:
    """Seconds as a source-list cell: '' for None, '180' for 180.0, '12.5' for 12.5 (exact, no exponent)."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parse_seconds(text: str, column: str) -> tuple[float | None, str | None]:
    """A start/end cell -> (seconds or None, error or None)."""
    text = text.strip()
    if not text:
        return None, None
    try:
        value = float(text)
    except ValueError:
        return None, f"{column} {text!r} is not a number of seconds"
    if not math.isfinite(value) or value < 0:
        return None, f"{column} {text!r} must be a finite number of seconds >= 0"
    if value > MAX_SECONDS:
        return None, f"{column} {text!r} is past {MAX_SECONDS:g} s (24 h): no video is that long"
    return value, None


def _class_form(name: str) -> str:
    """A class name with case, underscores and runs of spaces evened out: names with the same form
    are one class written two ways (a typo), never two classes."""
    return " ".join(name.replace("_", " ").lower().split())


_LANDSCAPE_FORMS = {_class_form(name): name for name in CLASSES}


def class_problem(name: str, any_class: bool, seen: dict[str, tuple[str, int]]) -> str | None:
    """Why a row's class is refused, None when it is fine. The nine are always fine, and a name
    written like one of them but not exactly (`Raining`, `wind_noise`) is always refused. Other
    names are refused unless `any_class` (a VGGSound-style list keeps its own classes); then a name
    written like an earlier row's other name (`seen`: form -> (name, line)) is refused too."""
    if not name:
        return "missing class"
    if name in CLASSES:
        return None
    form = _class_form(name)
    if form in _LANDSCAPE_FORMS:
        return f"unknown class {name!r} (did you mean {_LANDSCAPE_FORMS[form]!r}?)"
    if not any_class:
        return (
            f"unknown class {name!r}; expected one of: {', '.join(CLASSES)} (or pass any_class, "
            "--any-class, to keep classes outside the nine, as in a VGGSound list)"
        )
    first, line = seen.get(form, (name, 0))
    if first != name:
        return f"class {name!r} is {first!r} (line {line}) written another way"
    return None


def read_source_list(
    path: str | os.PathLike[str], allow_local: bool = False, any_class: bool = False
) -> list[Source]:
    """Read and validate a source list (CSV, header exactly `SOURCE_COLUMNS`).

    Every problem (bad header, wrong number of fields, missing or malformed source_id, missing url,
    a url the build cannot download (`url_problem`; local files only with `allow_local`), a class
    `class_problem` refuses (one outside the nine only without `any_class`), malformed or negative
    start/end or one past `MAX_SECONDS`, end <= start, bad split, duplicate source_id) is collected
    with its `file:line`; if there is any, one `SourceListError` lists them all.
    The file must be a regular file of at most `MAX_LIST_BYTES` (not a FIFO or device, which could
    read forever). Blank lines are ignored; a row's line is its first; a cell that `write_source_list`
    marked with a `'` (a formula start, `csv_text`) is read without it. Rows come back in file order.
    """
    path = Path(path)
    try:
        text = read_bounded_text(path, MAX_LIST_BYTES, "source list")
        return _parse_source_list(io.StringIO(text, newline=""), str(path), allow_local, any_class)
    except RefusedFile as e:
        raise SourceListError([f"{path}: {e}"]) from None
    except UnicodeDecodeError as e:
        raise SourceListError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    except csv.Error as e:
        raise SourceListError([f"{path}: not a readable CSV file ({e})"]) from None
    except OSError as e:
        raise SourceListError([f"{path}: cannot read it: {e.strerror or e}"]) from None


def _parse_source_list(f: TextIO, name: str, allow_local: bool, any_class: bool) -> list[Source]:
    errors: list[str] = []
    sources: list[Source] = []
    first_line: dict[str, int] = {}
    class_forms: dict[str, tuple[str, int]] = {}
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise SourceListError(
            [f"{name}: empty file; expected the header {','.join(SOURCE_COLUMNS)}"]
        )
    if tuple(cell.strip() for cell in header) != SOURCE_COLUMNS:
        raise SourceListError(
            [f"{name}:1: header is {','.join(header)!r}; expected {','.join(SOURCE_COLUMNS)!r}"]
        )
    next_line = reader.line_num + 1
    for row in reader:  # a row's line is its first: a quoted cell may span lines
        line, next_line = next_line, reader.line_num + 1
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{name}:{line}"
        if len(row) != len(SOURCE_COLUMNS):
            errors.append(f"{where}: {len(row)} fields; expected {len(SOURCE_COLUMNS)}")
            continue
        source_id, url, class_name, start_text, end_text, split, license_, attribution = (
            from_cell(cell).strip() for cell in row
        )
        row_errors: list[str] = []
        if not source_id:
            row_errors.append("missing source_id")
        elif not SOURCE_ID_RE.match(source_id):
            row_errors.append(
                f"source_id {source_id!r} must be 1-64 characters of A-Z a-z 0-9 _ - (no dots)"
            )
        elif source_id in first_line:
            row_errors.append(
                f"duplicate source_id {source_id!r} (first on line {first_line[source_id]})"
            )
        else:
            first_line[source_id] = line
        if not url:
            row_errors.append("missing url")
        elif problem := url_problem(url, allow_local):
            row_errors.append(problem[1])
        if problem := class_problem(class_name, any_class, class_forms):
            row_errors.append(problem)
        else:
            class_forms.setdefault(_class_form(class_name), (class_name, line))
        start, start_error = _parse_seconds(start_text, "start")
        end, end_error = _parse_seconds(end_text, "end")
        row_errors += [e for e in (start_error, end_error) if e]
        if end is not None and end <= (start or 0.0):
            row_errors.append(f"end {end_text!r} must be after start {start_text or '0'!r}")
        if split and split not in SPLITS:
            row_errors.append(f"split {split!r} must be empty or one of: {', '.join(SPLITS)}")
        if row_errors:
            errors += [f"{where}: {message}" for message in row_errors]
            continue
        sources.append(
            Source(
                source_id,
                url,
                class_name,
                start,
                end,
                split or None,
                license_,
                attribution,
                name,
                line,
            )
        )
    if not errors and not sources:
        errors.append(f"{name}: no sources (only a header)")
    if errors:
        raise SourceListError(errors)
    return sources


def select_sources(
    sources: Sequence[Source],
    classes: Iterable[str],
    limit: int | None = None,
    max_per_class: int | None = None,
) -> list[Source]:
    """The sources of a (partial) build, in list order.

    Keeps the sources of `classes`, at most `max_per_class` of each (its first ones in the list);
    `limit` then caps the total by taking sources in turn from each class (in the order of the
    sources' `class_vocabulary`), so that a small build still covers every selected class. Same
    input, same output.
    """
    wanted = set(classes)
    vocabulary = class_vocabulary(s.class_name for s in sources)
    for name in wanted:
        label_of(name, vocabulary)  # raises ValueError naming the unknown class
    for flag, value in (("limit", limit), ("max_per_class", max_per_class)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1 (got {value})")
    by_class: dict[str, list[Source]] = {name: [] for name in vocabulary if name in wanted}
    for source in sources:
        if source.class_name in by_class:
            by_class[source.class_name].append(source)
    queues = [rows[:max_per_class] for rows in by_class.values()]
    if limit is not None:
        taken: list[Source] = []
        depth = 0
        while len(taken) < limit and any(depth < len(q) for q in queues):
            taken += [q[depth] for q in queues if depth < len(q)][: limit - len(taken)]
            depth += 1
        queues = [taken]
    order = {id(source): i for i, source in enumerate(sources)}
    return sorted((s for q in queues for s in q), key=lambda s: order[id(s)])


def label_sources(sources: Iterable[Source], classes: Sequence[str]) -> list[Source]:
    """`sources` with `label` set to their class's index in `classes`; raises ValueError naming a
    source whose class is not there."""
    sources, index = list(sources), {name: i for i, name in enumerate(classes)}
    unknown = next((s for s in sources if s.class_name not in index), None)
    if unknown is not None:
        raise ValueError(
            f"{unknown.source_list}:{unknown.line}: class {unknown.class_name!r} of "
            f"{unknown.source_id!r} is not in the build's classes"
        )
    return [replace(s, label=index[s.class_name]) for s in sources]


def list_name(source_list: str | os.PathLike[str]) -> str:
    """The name by which a corpus records its source list: the file's name, without the folder
    (a corpus names no path of the machine that built it)."""
    return Path(source_list).name if str(source_list) else ""


def write_source_list(sources: Iterable[Source], path: str | os.PathLike[str]) -> Path:
    """Write `sources` as a source-list CSV (header `SOURCE_COLUMNS`) atomically: the file appears
    complete or not at all; a cell that a spreadsheet would run as a formula gets a `'` in front
    (`csv_text.to_cell`, which `read_source_list` undoes). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(SOURCE_COLUMNS)
        for s in sources:
            cells = (
                s.source_id,
                s.url,
                s.class_name,
                format_seconds(s.start),
                format_seconds(s.end),
                s.split or "",
                s.license,
                s.attribution,
            )
            writer.writerow(map(to_cell, cells))
    return path
