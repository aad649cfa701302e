"""VGGSound-style lists -> source lists, and the build's default list.

Four real lists share one shape (YouTube id, start second, VGGSound class name, split) and one
converter, `convert`:

- the paper's list as published by TempoTokens (`LANDSCAPE_URL`; header `ytid,start_time,class,set`);
- the VGGSounder labels (PyPI `vggsounder`): VGGSound's test clips, re-annotated label by label with
  a modality (A: audible only, V: visible only, AV: both) and three flags (background music, static
  image, voice-over); one entry per (clip, label), split left to the build;
- a full VGGSound CSV that a user supplies (`ytid,start,label,split`, no header), whose clips are
  filtered by the VGGSounder labels where VGGSounder annotated them;
- the same CSV converted whole under VGGSound's own class names (`convert_vggsound`), all classes or
  a chosen few: the corpus that F_a, the sound encoder, trains on (§4.1 of the paper).

The fault policy (see `FAULTS` and `manifests/README.md`) turns a list's real faults into dropped
rows, each reported with its line; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from importlib.resources import files
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

from rich.console import Console
from rich.table import Table

from landscape_av.classes import class_vocabulary, parse_class_selection
from landscape_av.csv_text import to_cell
from landscape_av.resources import shipped_source_list
from landscape_av.schema import SPLITS
from landscape_av.sources.source_list import (
    Source,
    format_seconds,
    read_source_list,
    write_source_list,
)

LANDSCAPE_URL = "https://raw.githubusercontent.com/guyyariv/TempoTokens/main/datasets/landscape.csv"
"""The paper's source list (Landscape, Lee et al. ECCV 2022) as published in the TempoTokens repo."""

VGGSOUND_CLASSES: dict[str, str] = {
    "thunder": "thunderstorm",
    "waterfall burbling": "waterfall burbling",
    "volcano explosion": "volcano eruption",
    "explosion": "volcano eruption",  # the TempoTokens list's name for VGGSound's "volcano explosion"
    "squishing water": "squishing water",
    "wind noise": "wind noise",
    "fire crackling": "fire crackling",
    "raining": "raining",
    "underwater bubbling": "underwater bubbling",
    "splashing water": "splashing water",
}
"""VGGSound-style class name -> Landscape class; names not here belong to other VGGSound classes."""

VGGSOUND_SECONDS = 10.0
"""Length of a VGGSound clip: its label holds for `start` to `start` + 10 s of the video."""

YOUTUBE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
LATE_START = 3600.0
"""Starts past this many seconds are reported (kept): real in long videos, but worth a look."""

LICENSE = "see source (YouTube)"
"""The licence of a listed YouTube video is not in these lists; the video's own page says it."""
TEMPOTOKENS_CREDIT = "list: Landscape (Lee et al., ECCV 2022) as published by TempoTokens (MIT)"
VGGSOUND_CREDIT = "list: VGGSound (CC BY 4.0); labels: VGGSounder (Apache-2.0)"
VGGSOUND_LIST_CREDIT = "list: VGGSound (CC BY 4.0)"

VGGSOUNDER_FLAGS: tuple[str, ...] = ("background_music", "static_image", "voice_over")
VGGSOUNDER_FILE = "vggsounder+background-music.csv"
"""The VGGSounder package's label file with every clip (the package's own default)."""

FAULTS: dict[str, str] = {
    "malformed": "dropped: not 4 fields, no class, a start that is not seconds >= 0, or a split not "
    "train/test",
    "invalid_id": "dropped: not a YouTube id (11 characters of A-Z a-z 0-9 _ -)",
    "exact_repeat": "dropped: the same row as an earlier line",
    "class_conflict": "dropped: the id is listed under two classes, so every row of it is dropped",
    "split_conflict": "dropped: the id is in both splits; test wins, its train rows are dropped",
    "repeat_id": "dropped: the id again (another start); the first row is kept",
    "late_start": "kept: the start is past an hour",
}
"""Fault kinds of a list row and what the policy does with the row, in the order they are tested."""

SKIPS: dict[str, str] = {
    "other_class": "a class not converted (outside the nine, or not chosen)",
    "not_audible_and_visible": "VGGSounder: the sound is only audible or only visible",
    "not_confirmed": "VGGSounder's labels for the clip lack the list's label",
    "background_music": "VGGSounder: background music",
    "static_image": "VGGSounder: a static image",
    "voice_over": "VGGSounder: voice-over",
}
"""Rows left out by design (not faults); counted, not listed."""


class FetchError(OSError):
    """A list that could not be fetched or holds nothing usable."""


@dataclass(frozen=True)
class Entry:
    """One row of a VGGSound-style list: `label` is the list's own class name, `split` '' where the
    list has none."""

    line: int
    ytid: str
    start: float
    label: str
    split: str = ""


@dataclass(frozen=True)
class Fault:
    """A faulty row of a list: its line, id, kind (a key of `FAULTS`) and what exactly is wrong."""

    line: int
    source_id: str
    kind: str
    detail: str

    @property
    def action(self) -> str:
        return FAULTS[self.kind].split(":", 1)[0]


@dataclass(frozen=True)
class ClipLabels:
    """VGGSounder's annotation of one 10 s clip: label -> modality ('A', 'V' or 'AV'), set flags."""

    modalities: dict[str, str]
    flags: frozenset[str]


@dataclass
class Conversion:
    """The result of converting a list: the sources kept, every fault, counts of rows skipped by design."""

    name: str
    rows: int
    sources: list[Source]
    faults: list[Fault]
    skipped: Counter[str] = field(default_factory=Counter)
    unannotated: int = 0
    """Kept rows that the VGGSounder labels do not cover (only when filtering by them)."""

    def fault_counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)


def youtube_url(ytid: str) -> str:
    return f"https://www.youtube.com/watch?v={ytid}"


def _parse_start(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def read_vggsound_list(text: str) -> tuple[list[Entry], list[Fault]]:
    """Rows `ytid,start,class,split` (optional header starting `ytid`) -> entries and malformed rows."""
    entries: list[Entry] = []
    faults: list[Fault] = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if line == 1 and cells[0].lstrip("# ").lower() in ("ytid", "youtube_id"):
            continue
        if len(cells) != 4:
            faults.append(Fault(line, cells[0], "malformed", f"{len(cells)} fields; expected 4"))
            continue
        ytid, start_text, label, split = cells
        start = _parse_start(start_text)
        if not label:
            faults.append(Fault(line, ytid, "malformed", "no class"))
        elif start is None:
            faults.append(
                Fault(line, ytid, "malformed", f"start {start_text!r} is not seconds >= 0")
            )
        elif split not in SPLITS:
            faults.append(Fault(line, ytid, "malformed", f"split {split!r} is not train or test"))
        else:
            entries.append(Entry(line, ytid, start, label, split))
    return entries, faults


def _label_row_problem(row: dict[str, str]) -> str | None:
    ytid, _, suffix = row["video_id"].rpartition("_")
    if not (ytid and suffix.isdigit()):
        return f"video_id {row['video_id']!r} is not <ytid>_<start>"
    if row["modality"] not in ("A", "V", "AV"):
        return f"modality {row['modality']!r} is not A, V or AV"
    if any(row[name].strip().lower() not in ("true", "false") for name in VGGSOUNDER_FLAGS):
        return f"a flag ({', '.join(VGGSOUNDER_FLAGS)}) is not True or False"
    return None


def read_vggsounder_labels(
    path: str | Path | None = None,
) -> tuple[dict[tuple[str, float], ClipLabels], list[Entry]]:
    """A VGGSounder label file (default: the installed package's) -> annotations keyed by
    (YouTube id, start) and one entry per row (split ''). Raises ValueError naming `file:line` of
    every malformed row, ImportError when the package is missing."""
    if path is None:
        try:
            path = Path(str(files("vggsounder") / "data" / VGGSOUNDER_FILE))
        except ModuleNotFoundError:
            raise ImportError(
                "the VGGSounder labels need the vggsounder package: "
                "pip install 'landscape-av[vggsounder]'"
            ) from None
    path = Path(path)
    modalities: dict[tuple[str, float], dict[str, str]] = defaultdict(dict)
    flags: dict[tuple[str, float], frozenset[str]] = {}
    entries: list[Entry] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [
            c
            for c in ("video_id", "label", "modality", *VGGSOUNDER_FLAGS)
            if c not in (reader.fieldnames or ())
        ]
        if missing:
            raise ValueError(
                f"{path}:1: not a VGGSounder label file (no column {', '.join(missing)})"
            )
        for row in reader:
            problem = _label_row_problem(row)
            if problem:
                errors.append(f"{path}:{reader.line_num}: {problem}")
                continue
            ytid, _, suffix = row["video_id"].rpartition("_")
            key = (ytid, float(suffix))
            modalities[key][row["label"]] = row["modality"]
            set_flags = (n for n in VGGSOUNDER_FLAGS if row[n].strip().lower() == "true")
            flags.setdefault(key, frozenset(set_flags))
            entries.append(Entry(reader.line_num, ytid, key[1], row["label"]))
    if errors:
        raise ValueError(f"{len(errors)} malformed VGGSounder label rows:\n" + "\n".join(errors))
    clips = {key: ClipLabels(labels, flags[key]) for key, labels in modalities.items()}
    return clips, entries


def _skip_reason(clip: ClipLabels | None, label: str) -> str | None:
    """Why the VGGSounder annotation rules out (clip, label), 'unannotated', or None (keep)."""
    if clip is None:
        return "unannotated"
    if label not in clip.modalities:
        return "not_confirmed"
    if clip.modalities[label] != "AV":
        return "not_audible_and_visible"
    return next((flag for flag in VGGSOUNDER_FLAGS if flag in clip.flags), None)


def convert(
    entries: Sequence[Entry],
    faults: Iterable[Fault],
    *,
    name: str,
    credit: str,
    annotations: dict[tuple[str, float], ClipLabels] | None = None,
    classes: Mapping[str, str] = VGGSOUND_CLASSES,
    seconds: float | None = None,
) -> Conversion:
    """Apply the class mapping `classes` (list name -> source-list class; rows of other names are
    skipped), the VGGSounder filter (when `annotations` is given) and the fault policy (`FAULTS`,
    tested in that order; each dropped row gets exactly one fault) to a list's entries. Sources
    come out in the order of their rows in the list, each ending `seconds` after its start (None:
    open-ended, clipped as far as the build's --max-clips goes)."""
    faults = list(faults)
    rows_read = len(entries) + len(faults)
    skipped: Counter[str] = Counter()
    unannotated = 0
    seen: dict[tuple[str, float, str, str], int] = {}
    by_id: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.label not in classes:
            skipped["other_class"] += 1
            continue
        if not YOUTUBE_ID_RE.match(e.ytid):
            faults.append(Fault(e.line, e.ytid, "invalid_id", f"{e.ytid!r} is not a YouTube id"))
            continue
        row = (e.ytid, e.start, e.label, e.split)
        if row in seen:
            faults.append(Fault(e.line, e.ytid, "exact_repeat", f"same row as line {seen[row]}"))
            continue
        seen[row] = e.line
        if annotations is not None:
            reason = _skip_reason(annotations.get((e.ytid, e.start)), e.label)
            if reason == "unannotated":
                unannotated += 1
            elif reason:
                skipped[reason] += 1
                continue
        by_id[e.ytid].append(e)

    kept: list[Entry] = []
    for ytid, rows in by_id.items():
        if len({classes[e.label] for e in rows}) > 1:
            where = ", ".join(f"line {e.line}: {classes[e.label]}" for e in rows)
            faults += [Fault(e.line, ytid, "class_conflict", where) for e in rows]
            continue
        test_line = next((e.line for e in rows if e.split == "test"), None)
        if test_line is not None and any(e.split == "train" for e in rows):
            detail = f"also in test on line {test_line}"
            faults += [
                Fault(e.line, ytid, "split_conflict", detail) for e in rows if e.split == "train"
            ]
            rows = [e for e in rows if e.split != "train"]
        first = rows[0]
        detail = f"first on line {first.line} (start {format_seconds(first.start)})"
        faults += [Fault(e.line, ytid, "repeat_id", detail) for e in rows[1:]]
        kept.append(first)

    kept.sort(key=lambda e: e.line)
    faults += [
        Fault(e.line, e.ytid, "late_start", f"start {format_seconds(e.start)} s")
        for e in kept
        if e.start > LATE_START
    ]
    order = list(FAULTS)
    faults.sort(key=lambda f: (f.line, order.index(f.kind)))
    sources = [
        Source(
            source_id=e.ytid,
            url=youtube_url(e.ytid),
            class_name=classes[e.label],
            start=e.start,
            end=None if seconds is None else e.start + seconds,
            split=e.split or None,
            license=LICENSE,
            attribution=f"YouTube {e.ytid}; {credit}",
            source_list=name,
            line=e.line,
        )
        for e in kept
    ]
    return Conversion(name, rows_read, sources, faults, skipped, unannotated)


def convert_landscape_list(text: str, name: str = LANDSCAPE_URL) -> Conversion:
    """The paper's list (TempoTokens `landscape.csv`, as text) -> sources + faults."""
    entries, faults = read_vggsound_list(text)
    return convert(entries, faults, name=name, credit=TEMPOTOKENS_CREDIT)


def convert_vggsounder(
    labels: str | Path | None = None, vggsound_csv: str | Path | None = None
) -> Conversion:
    """The VGGSounder pool: its clips of the nine classes that are audible and visible and carry none
    of the three flags (`labels`: a VGGSounder label file, default the installed package's). With
    `vggsound_csv` (a full VGGSound list), that list's rows are converted instead, filtered the same
    way where VGGSounder annotated the clip and kept as listed where it did not."""
    clips, entries = read_vggsounder_labels(labels)
    name, faults = str(labels or f"vggsounder/{VGGSOUNDER_FILE}"), []
    if vggsound_csv is not None:
        name = str(vggsound_csv)
        entries, faults = read_vggsound_list(Path(vggsound_csv).read_text(encoding="utf-8-sig"))
    return convert(entries, faults, name=name, credit=VGGSOUND_CREDIT, annotations=clips)


def convert_vggsound(vggsound_csv: str | Path, classes: str = "all") -> Conversion:
    """A full VGGSound list (`ytid,start,label,split`) -> sources under VGGSound's own class names:
    every class, or those of `classes` (a `parse_class_selection` text; ValueError naming an
    unknown one). Each source is the 10 s clip that VGGSound labels (`VGGSOUND_SECONDS` from its
    start), not the rest of the video. No VGGSounder filter. Build it with `build --any-class`."""
    entries, faults = read_vggsound_list(Path(vggsound_csv).read_text(encoding="utf-8-sig"))
    chosen = parse_class_selection(classes, sorted({e.label for e in entries}))
    return convert(
        entries,
        faults,
        name=str(vggsound_csv),
        credit=VGGSOUND_LIST_CREDIT,
        classes={name: name for name in chosen},
        seconds=VGGSOUND_SECONDS,
    )


def fetch_text(url: str, timeout: float = 15.0) -> str:
    """The text at `url` (http(s) or file URL, or a local path). Raises FetchError saying why not."""
    if Path(url).is_file():
        return Path(url).read_text(encoding="utf-8-sig")
    try:
        request = Request(url, headers={"User-Agent": "landscape-av"})
        with urlopen(request, timeout=timeout) as response:
            return response.read().decode("utf-8-sig")
    except URLError as e:
        raise FetchError(f"cannot fetch {url}: {e.reason}") from None
    except (OSError, ValueError, HTTPException) as e:  # timeouts, resets, bad URLs, bad bytes
        raise FetchError(f"cannot fetch {url}: {e}") from None


def write_faults(faults: Iterable[Fault], path: str | Path) -> Path:
    """The fault report as CSV: `line,source_id,kind,action,detail`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("line", "source_id", "kind", "action", "detail"))
        for x in faults:
            writer.writerow((x.line, *map(to_cell, (x.source_id, x.kind, x.action, x.detail))))
    return path


def print_report(conversion: Conversion, console: Console, details: bool = True) -> None:
    """Sources per class, rows skipped by design, faults by kind and (with `details`) every fault."""
    c = conversion
    per_class = Counter(s.class_name for s in c.sources)
    console.print(f"[bold]{c.name}[/]: {c.rows} rows -> {len(c.sources)} sources")
    table = Table("class", "sources", title="Sources per class", title_justify="left")
    for name in class_vocabulary(per_class):
        table.add_row(name, str(per_class[name]))
    console.print(table)
    if c.skipped or c.unannotated:
        skips = [f"{n} {SKIPS[k]}" for k, n in sorted(c.skipped.items())]
        if c.unannotated:
            skips.append(f"{c.unannotated} kept without VGGSounder labels (listed as they are)")
        console.print("Left out by design: " + "; ".join(skips))
    counts = c.fault_counts()
    if not counts:
        console.print("No faults.")
        return
    console.print(
        "Faults: " + "; ".join(f"{counts[k]} {k} ({FAULTS[k]})" for k in FAULTS if counts[k])
    )
    if details:
        table = Table("line", "source_id", "fault", "action", "detail", title="Faults by line")
        for f in c.faults:
            table.add_row(str(f.line), f.source_id, f.kind, f.action, f.detail)
        console.print(table)


def default_source_list(
    out_dir: Path, url: str = LANDSCAPE_URL, quiet: bool = False, timeout: float = 15.0
) -> tuple[Path, str]:
    """The source list a build without `--source-list` uses, written into `out_dir`, and one line
    saying which list it is and why.

    The paper's list when it can be fetched from `url` (converted to `landscape.csv`, beside the list
    as fetched, `landscape-tempotokens.csv`, and its fault report, `landscape-faults.csv`); otherwise
    the same list fetched by an earlier run into `out_dir`; otherwise the shipped VGGSounder pool
    (copied to `vggsounder.csv`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = out_dir / "landscape.csv"
    try:
        text = fetch_text(url, timeout)
        conversion = convert_landscape_list(text, url)
        if not conversion.sources:
            raise FetchError(f"{url} holds no usable rows of a VGGSound-style list")
    except FetchError as e:
        if converted.is_file():
            return converted, f"the paper's list as fetched earlier ({converted}); now {e}"
        pool = out_dir / "vggsounder.csv"
        pool.write_bytes(shipped_source_list("vggsounder.csv").read_bytes())
        count = len(read_source_list(pool))
        return pool, (
            f"the shipped VGGSounder pool ({count} sources), "
            f"since the paper's list is out of reach: {e}"
        )
    (out_dir / "landscape-tempotokens.csv").write_text(text, encoding="utf-8", newline="")
    faults = write_faults(conversion.faults, out_dir / "landscape-faults.csv")
    write_source_list(conversion.sources, converted)
    if not quiet:
        print_report(conversion, Console(stderr=True), details=False)
    dropped = sum(f.action == "dropped" for f in conversion.faults)
    return converted, (
        f"the paper's list from {url} ({len(conversion.sources)} sources; "
        f"{dropped} rows dropped under the fault policy, listed in {faults})"
    )
