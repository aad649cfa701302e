"""What `landscape-av view` shows of a built corpus: JSON-ready values, member bytes, a static export.

`CorpusView(corpus)` reads the manifests, card and statistics once. Its clips carry their clips
manifest row, their source's row of the sources manifest (URL, licence, attribution, the filter
measures) and the URLs of their members; `groups` and `page` select them by class, split and a
search on the source id. `locate(key, ext)` says where a member's bytes lie in its shard, from an
index of the shard's tar headers made on its first use (`corpus.index_shard`), so that a thumbnail
or a range of an mp4 is read alone: nothing is extracted, and nothing is written into the corpus.

The page itself is `view_page/` (one HTML template, a script and a style sheet, no build step);
`view_server` serves it with these values under `/api/`, and `export_view` writes it, with the data
inline, thumbnails and short previews, as a folder that opens without a server.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from landscape_av.corpus.card import card_summary
from landscape_av.corpus.corpus import Corpus, Member, index_shard
from landscape_av.corpus.stats import FIGURES, corpus_stats
from landscape_av.ffmpeg import FFmpegError, run_ffmpeg
from landscape_av.processes import stop_all
from landscape_av.schema import MEMBERS, SAMPLE_KEY_RE, SHARD_FILE_RE, SPLITS

PAGE_FILES = ("view.js", "view.css")
"""The page's static files, beside its template `index.html` in `view_page/`."""
MAX_PAGE = 500
"""Most clips one `/api/clips` answer holds."""
MEDIA_TYPES = {
    "mp4": "video/mp4",
    "flac": "audio/flac",
    "jpg": "image/jpeg",
    "json": "application/json",
}
"""Content types of the members the page uses; other members go as application/octet-stream."""


def page_file(name: str) -> Path:
    """A file of the page (`index.html` or one of `PAGE_FILES`)."""
    return Path(str(files("landscape_av.corpus") / "view_page" / name))


def render_page(title: str, inline_data: bool = False) -> str:
    """The page's HTML: the served page, or with `inline_data` the export's, which loads its data
    from `data.js` beside it."""
    template = string.Template(page_file("index.html").read_text())
    data_script = '<script src="data.js"></script>' if inline_data else ""
    return template.substitute(title=escape(title), data_script=data_script)


@dataclass(frozen=True)
class Located:
    """A member's bytes: `size` bytes at `offset` of the shard file `path`; `etag` changes with
    the file."""

    path: Path
    offset: int
    size: int
    etag: str
    media_type: str

    def read(
        self, start: int = 0, stop: int | None = None, chunk: int = 1 << 18
    ) -> Iterator[bytes]:
        """The member's bytes [start, stop), in chunks, read from the shard where they lie."""
        stop = self.size if stop is None else min(stop, self.size)
        with open(self.path, "rb", buffering=0) as f:  # no read-ahead past the member
            f.seek(self.offset + start)
            left = stop - start
            while left > 0:
                data = f.read(min(chunk, left))
                if not data:
                    raise OSError(f"{self.path} ends inside a member (was it rewritten?)")
                left -= len(data)
                yield data


@dataclass
class _Shard:
    """A shard as `CorpusView.locate` knows it: its local file, its (size, mtime) when indexed,
    its `index_shard`, and the lock of both."""

    path: Path | None = None
    stamp: tuple[int, int] | None = None
    index: dict[str, dict[str, Member]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _plain(value: Any) -> Any:
    """`value` (a manifest row, the statistics) with every NaN as None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _matches(clip: dict[str, Any], cls: str, split: str, query: str) -> bool:
    """Whether a clip passes the page's filters: class and split exactly, `query` anywhere in its
    source id, ignoring case (view.js's `matches` filters an export's clips alike)."""
    return (
        (not cls or clip["class"] == cls)
        and (not split or clip["split"] == split)
        and (not query or query.lower() in str(clip["source_id"]).lower())
    )


class CorpusView:
    """A built corpus as `landscape-av view` shows it (see the module doc). Thread-safe: the
    server answers requests in threads. `warn(line)` gets each problem found in the manifests or
    shards (stderr by default); `problems` keeps them for the page."""

    def __init__(self, corpus: Corpus, warn: Callable[[str], None] | None = None) -> None:
        self.corpus = corpus
        self.problems: list[str] = []
        self._warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
        self._lock = threading.Lock()  # over `problems`, `_shards` and fetching shards
        self._shards: dict[str, _Shard] = {}
        manifests = corpus.manifests()
        self.stats = _plain(corpus_stats(corpus))
        self.classes = list(corpus.classes)
        clips = manifests["clips"].to_dict("records")
        self.classes += sorted({str(c["class"]) for c in clips} - set(self.classes))
        self.splits = list(SPLITS) + sorted({str(c["split"]) for c in clips} - set(SPLITS))
        sources = {r["source_id"]: _plain(r) for r in manifests["sources"].to_dict("records")}
        self._by_key: dict[str, dict[str, Any]] = {}
        self.clips: list[dict[str, Any]] = []
        for row, record in enumerate(clips):
            clip = _plain(record) | {"source": sources.get(record["source_id"])}
            clip["members"] = self._member_urls(row, clip)
            self.clips.append(clip)
        order = {
            (c, s): i for i, (c, s) in enumerate((c, s) for c in self.classes for s in self.splits)
        }
        self.clips.sort(key=lambda c: order[(str(c["class"]), str(c["split"]))])  # stable
        self.failures = [_plain(r) for r in manifests["failures"].to_dict("records")]
        card = corpus.card_path.read_text() if corpus.card_path.is_file() else ""
        title, summary = card_summary(card)
        self.summary = {
            "title": title or corpus.folder.name,
            "summary": summary,
            "location": corpus.location,
            "classes": self.classes,
            "splits": self.splits,
            "stats": self.stats,
            "figures": [
                {"name": name, "caption": caption, "url": f"/figures/{name}.png"}
                for name, caption in FIGURES.items()
                if (corpus.figures_dir / f"{name}.png").is_file()
            ],
            "card": "/card" if card else None,
            "build": corpus.build_settings(),
            "problems": self.problems,
        }

    def report(self, line: str) -> None:
        """Keep a problem for the page and pass it to `warn`."""
        with self._lock:
            self.problems.append(line)
        self._warn(line)

    def _member_urls(self, row: int, clip: dict[str, Any]) -> dict[str, str]:
        """`/media/KEY.EXT` per member of a clip whose key and shard name are sound, else {}."""
        key, shard = str(clip["key"]), str(clip["shard"])
        where = f"manifests/clips.parquet row {row}"
        if not SAMPLE_KEY_RE.match(key):
            self.report(f"{where}: key {key!r} is not a sample key: its media are not served")
        elif not SHARD_FILE_RE.match(shard):
            self.report(f"{where}: shard {shard!r} is not a shard file name: not served")
        elif key in self._by_key:
            self.report(f"{where}: key {key!r} is listed twice: the first row is served")
        else:
            self._by_key[key] = clip
            return {ext: f"/media/{key}.{ext}" for ext in MEMBERS}
        return {}

    def select(self, cls: str = "", split: str = "", query: str = "") -> list[dict[str, Any]]:
        """The clips that pass the filters, by class (the corpus's order), split, then manifest."""
        return [c for c in self.clips if _matches(c, cls, split, query)]

    def groups(self, cls: str = "", split: str = "", query: str = "") -> list[dict[str, Any]]:
        """One entry per class and split that has clips passing the filters: its clip count."""
        counts: dict[tuple[str, str], int] = {}
        for clip in self.select(cls, split, query):
            group = (str(clip["class"]), str(clip["split"]))
            counts[group] = counts.get(group, 0) + 1
        return [{"class": c, "split": s, "clips": n} for (c, s), n in counts.items()]

    def page(
        self, cls: str = "", split: str = "", query: str = "", offset: int = 0, limit: int = 48
    ) -> dict[str, Any]:
        """Clips [offset, offset + limit) of the selection, and how many it holds."""
        selected = self.select(cls, split, query)
        limit = max(0, min(limit, MAX_PAGE))
        return {
            "total": len(selected),
            "offset": offset,
            "limit": limit,
            "clips": selected[offset : offset + limit],
        }

    def locate(self, key: str, ext: str) -> Located | None:
        """Where member `ext` of clip `key` lies, None where the corpus has no such member."""
        clip = self._by_key.get(key)
        if clip is None:
            return None
        name = str(clip["shard"])
        with self._lock:
            shard = self._shards.setdefault(name, _Shard())
        lines: list[str] = []
        with shard.lock:  # each shard indexed once, while other shards are served
            if shard.path is None:
                with self._lock:  # a URL's local copy is fetched into one shard at a time
                    shard.path = self.corpus.shard(name)
            try:
                stat = shard.path.stat()
            except FileNotFoundError:
                return None
            if shard.stamp != (stat.st_size, stat.st_mtime_ns):  # new, or the file changed

                def keep(k: str, member: str, message: str) -> None:
                    parts = (f"data/{name}", k, member)
                    lines.append("/".join(p for p in parts if p != "-") + f": {message}")

                shard.index = index_shard(shard.path, report=keep)
                shard.stamp = (stat.st_size, stat.st_mtime_ns)
            path, stamp, member = shard.path, shard.stamp, shard.index.get(key, {}).get(ext)
        for line in lines:
            self.report(line)
        if member is None:
            return None
        return Located(
            path,
            member.offset,
            member.size,
            f'"{name}-{stamp[1]:x}-{member.offset:x}-{member.size:x}"',
            MEDIA_TYPES.get(ext, "application/octet-stream"),
        )

    def member_bytes(self, key: str, ext: str) -> bytes | None:
        """The whole member `ext` of clip `key`, None where there is none."""
        found = self.locate(key, ext)
        return b"".join(found.read()) if found else None


# --- the static export --------------------------------------------------------------------------

EXPORT_MARK = "landscape-av-view.json"
"""A file of every export: what it shows; an export folder that holds it may be replaced."""


@dataclass(frozen=True)
class ExportOptions:
    preview_seconds: float = 3.0  # length of each clip's preview from its start; 0: none
    preview_height: int = 180  # previews are scaled down to this height (never up)
    per_group: int | None = None  # at most this many clips per class and split (None: all)
    workers: int = 2  # previews encoded at once (one ffmpeg each)


def export_check(corpus: Corpus, dest: Path) -> str | None:
    """Why `dest` may not take an export of `corpus`, or None: it is the corpus folder or inside
    it, or a folder holding anything but an earlier export."""
    target, folder = dest.resolve(), corpus.folder.resolve()
    if target == folder or target.is_relative_to(folder):
        return f"{dest} is inside the corpus folder {corpus.folder}: export somewhere else"
    if folder.is_relative_to(target):
        return f"{dest} holds the corpus folder {corpus.folder}: export somewhere else"
    if target.exists() and not target.is_dir():
        return f"{dest} is a file, not a folder"
    if target.is_dir() and any(target.iterdir()) and not (target / EXPORT_MARK).is_file():
        return f"{dest} is not empty and holds no earlier export: use a new or empty folder"
    return None


def export_view(
    view: CorpusView,
    dest: Path,
    options: ExportOptions = ExportOptions(),
    on_clip: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Write the page of `view` into the folder `dest` with its data inline (`data.js`), the
    thumbnails (`thumbs/`), previews (`previews/`: the first `preview_seconds` of each clip with
    its sound, H.264/AAC at `preview_height`) and figures; returns the clips exported. It appears
    whole or not at all (written beside it, then renamed into place), and replaces an earlier
    export there. `on_clip(done, total)` follows the clips. ValueError where `export_check` refuses."""
    refused = export_check(view.corpus, dest)
    if refused:
        raise ValueError(refused)
    dest = dest.resolve()
    stage = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    for sub in ("static", "thumbs", "previews", "figures"):
        (stage / sub).mkdir(parents=True)
    try:
        kept: dict[tuple[str, str], int] = {}
        clips = []
        for clip in view.clips:
            group = (str(clip["class"]), str(clip["split"]))
            if clip["members"] and kept.get(group, 0) < (options.per_group or math.inf):
                kept[group] = kept.get(group, 0) + 1
                clips.append(clip)

        def export_clip(clip: dict[str, Any]) -> dict[str, Any]:
            key, members = clip["key"], {}
            thumb = view.member_bytes(key, "jpg")
            if thumb is not None:
                (stage / "thumbs" / f"{key}.jpg").write_bytes(thumb)
                members["jpg"] = f"thumbs/{key}.jpg"
            mp4 = view.locate(key, "mp4")
            if mp4 is not None and options.preview_seconds > 0:
                try:
                    _preview(mp4, stage / "previews" / f"{key}.mp4", options)
                    members["mp4"] = f"previews/{key}.mp4"
                except FFmpegError as err:
                    view.report(f"{key}: no preview ({str(err).splitlines()[-1]})")
            return clip | {"members": members}

        done = []
        pool = ThreadPoolExecutor(max(1, options.workers))
        try:
            for n, clip in enumerate(pool.map(export_clip, clips), 1):
                done.append(clip)
                on_clip(n, len(clips))
        except KeyboardInterrupt:
            stop_all()  # kill the running ffmpeg children now
            raise
        finally:
            pool.shutdown(cancel_futures=True)
        figures = []
        for figure in view.summary["figures"]:
            shutil.copyfile(
                view.corpus.figures_dir / f"{figure['name']}.png", stage / figure["url"][1:]
            )
            figures.append(figure | {"url": figure["url"][1:]})
        card = None
        if view.summary["card"]:
            shutil.copyfile(view.corpus.card_path, stage / "card.md")
            card = "card.md"
        corpus = view.corpus  # a folder is named, not its path on this machine
        location = corpus.location if corpus.is_remote else corpus.folder.name
        summary = view.summary | {"figures": figures, "card": card, "location": location}
        summary["problems"] = list(view.problems)
        summary["export"] = {
            "clips": len(done),
            "of": len(view.clips),
            "preview_seconds": options.preview_seconds,
            "per_group": options.per_group,
        }
        data = {"summary": summary, "clips": done, "failures": view.failures}
        (stage / "data.js").write_text(
            f"window.LANDSCAPE_VIEW = {json.dumps(data, allow_nan=False)};\n"
        )
        (stage / "index.html").write_text(render_page(summary["title"], inline_data=True))
        for name in PAGE_FILES:
            shutil.copyfile(page_file(name), stage / "static" / name)
        (stage / EXPORT_MARK).write_text(
            json.dumps(summary["export"] | {"corpus": location}) + "\n"
        )
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        if dest.exists():
            os.replace(dest, old)
        os.replace(stage, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return len(done)


def _preview(mp4: Located, out: Path, options: ExportOptions) -> None:
    """Encode the first `preview_seconds` of an mp4 member, with its sound, at `preview_height`;
    ffmpeg's subfile protocol reads the member where it lies in the shard."""
    source = f"subfile,,start,{mp4.offset},end,{mp4.offset + mp4.size},,:{mp4.path}"
    scale = f"scale=-2:'min(ih,{options.preview_height})'"
    run_ffmpeg(
        ["-i", source, "-t", f"{options.preview_seconds:g}", "-vf", scale]
        + ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p"]
        + ["-c:a", "aac", "-b:a", "96k", "-threads", "1", "-movflags", "+faststart", out]
    )
