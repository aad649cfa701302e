"""`Corpus(folder)`: the one way to read a built corpus folder.

It knows the folder's paths (`schema` layout), reads each output manifest once, and iterates
shards (per split) and their samples. A sample is the run of consecutive tar members `KEY.ext`
that share a key; the split of a member name into key and extension lives here
(`schema.split_member`), and so does the checked tar reading, through the bounded `tar_reader`:
streaming (`read_shard`) or by the members' places in the file (`index_shard`, for reading one
member or a range of it alone)::

    corpus = Corpus("landscape-av")
    clips = corpus.manifest("clips")                  # pandas DataFrame, read once
    for sample in corpus.samples("train", members=("json", "mp4")):
        sample.key, sample.members["mp4"]              # bytes
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_av.classes import CLASSES
from landscape_av.corpus.manifests import manifest_path, read_manifest_table
from landscape_av.corpus.tar_reader import ShardUnreadable, read_members, read_samples, shown
from landscape_av.schema import (
    BUILD_FILE,
    CARD_FILE,
    DATA_DIR,
    FIGURES_DIR,
    MANIFESTS,
    SHARD_FILE_RE,
    shard_glob,
)
from landscape_av.storage import CorpusCopy, is_remote, local_path

if TYPE_CHECKING:
    import pandas as pd

Report = Callable[[str, str, str], None]
"""`report(key, member, message)`: where a shard reader sends what it cannot read ("-": none)."""


@dataclass(frozen=True)
class Sample:
    """One sample of a shard: its key and member bytes by extension (`mp4`, `json`, ...)."""

    key: str
    members: dict[str, bytes]

    def meta(self) -> dict[str, Any]:
        """The sample's `json` member, parsed."""
        return json.loads(self.members["json"])


def _problem_reporter(path: Path, report: Report | None) -> Report:
    """`report`, or where there is none, a function raising ValueError that names the shard."""

    def problem(key: str, member: str, message: str) -> None:
        if report is None:
            where = "/".join(p for p in (path.name, key, member) if p != "-")
            raise ValueError(f"{where}: {message}")
        report(key, member, message)

    return problem


def read_shard(
    path: Path, members: Collection[str] | None = None, report: Report | None = None
) -> Iterator[Sample]:
    """The samples of one shard, in tar order, streamed (one sample in memory at a time) by the
    bounded reader `tar_reader.read_samples`.

    Only the members whose extension is in `members` (default: all) are read. An entry that is
    not a regular file or that `schema.member_problem` refuses from its header (a path, no
    extension, a bad key, over the size bound), a member seen twice in a sample (the first is
    kept) and one past a sample's bound on members is passed to `report` and skipped unread;
    damage to the tar, or a bound it breaks, is reported and ends the reading, dropping the
    sample it cut. Without `report`, each raises ValueError naming the shard.
    """
    path = Path(path)
    problem = _problem_reporter(path, report)

    def refused(key: str, name: str, reason: str) -> None:
        problem(key, "-", f"unexpected tar entry {shown(name)}: {reason}")

    try:
        for key, found in read_samples(path, members, refused):
            yield Sample(key, found)
    except ShardUnreadable as err:  # the sample it cut is not trusted
        problem(err.key, "-", f"tar unreadable after this point: {err}")


MAX_SHARD_ENTRIES = 100_000
"""Most members `index_shard` indexes in one shard (a shard of 1,000 samples holds 4,000)."""


@dataclass(frozen=True)
class Member:
    """Where a member's bytes lie in its (uncompressed) shard file."""

    offset: int
    size: int


def index_shard(
    path: Path, report: Report | None = None, max_entries: int = MAX_SHARD_ENTRIES
) -> dict[str, dict[str, Member]]:
    """key -> extension -> `Member` of every member of the shard `path`, from its tar headers alone
    (`tar_reader.read_members`: one 512-byte read per entry, then a seek past its data), so that
    a member, or a range of one, can be read without the rest of the shard.

    Bounded and checked as `read_shard` is, by the same reader: an entry that is not a regular
    file, that `schema.member_problem` refuses or that repeats its sample's extension is skipped
    (the first copy kept, also where a key comes back later in the shard); past `max_entries`
    members, at a damaged header, a bound the reader keeps, an entry running past the end of the
    file or a compressed shard, the index stops. Each goes to `report`; without it, each raises
    ValueError naming the shard."""
    path = Path(path)
    problem = _problem_reporter(path, report)

    def refused(key: str, name: str, reason: str) -> None:
        problem(key, "-", f"unexpected tar entry {shown(name)}: {reason}")

    index: dict[str, dict[str, Member]] = {}
    count, file_size = 0, path.stat().st_size
    try:
        for key, ext, entry, _read in read_members(path, refused, compressed=False):
            if count == max_entries:
                problem("-", "-", f"over {max_entries:,} tar entries: the rest is not read")
                break
            if entry.offset + entry.size > file_size:
                problem(
                    "-",
                    "-",
                    f"truncated: the file ends inside {shown(entry.name)}: the rest is not read",
                )
                break
            count += 1
            found = index.setdefault(key, {})
            if ext in found:
                problem(key, ext, "member appears twice")
                continue
            found[ext] = Member(entry.offset, entry.size)
    except ShardUnreadable as err:
        problem("-", "-", f"{err}: the rest is not read")
    return index


def shard_keys(path: Path) -> list[str]:
    """The sample keys of a shard in order, from its tar headers alone (no member is read).
    Raises ValueError naming the shard where it is damaged or breaks the reader's bounds."""
    try:
        return [key for key, _ in read_samples(path, members=())]
    except ShardUnreadable as e:
        raise ValueError(f"{path}: {e}") from None


class Corpus:
    """A built corpus folder: its paths, its manifests (each read once, then cached) and its
    shards and samples. Functions that read a corpus take a `Corpus` or a folder (`Corpus.of`).

    `folder` may also be an fsspec URL (`s3://bucket/prefix`, with `storage_options` for its
    filesystem, else its environment's credentials): the corpus is then read through a local
    copy (`storage.CorpusCopy`, in `folder`), its shards fetched on first use."""

    def __init__(
        self, folder: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        self._copy = CorpusCopy(str(folder), storage_options) if is_remote(folder) else None
        self.folder = self._copy.folder if self._copy else local_path(folder)
        self.location = self._copy.remote.url if self._copy else str(self.folder)
        """Where the corpus is: its folder, or its URL."""
        self._manifests: dict[str, pd.DataFrame] = {}

    @classmethod
    def of(cls, corpus: Corpus | str | os.PathLike[str]) -> Corpus:
        """`corpus` itself when it is a Corpus (keeping what it has read), else a new one."""
        return corpus if isinstance(corpus, Corpus) else cls(corpus)

    def __repr__(self) -> str:
        return f"Corpus({self.location!r})"

    @property
    def is_remote(self) -> bool:
        return self._copy is not None

    @property
    def data_dir(self) -> Path:
        return self.folder / DATA_DIR

    @property
    def figures_dir(self) -> Path:
        return self.folder / FIGURES_DIR

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE

    @property
    def build_path(self) -> Path:
        return self.folder / BUILD_FILE

    def manifest_path(self, name: str, fmt: str = "parquet") -> Path:
        """`manifests/<name>.<fmt>` (fmt: parquet or csv)."""
        return manifest_path(self.folder, name, fmt)

    def manifest(self, name: str) -> pd.DataFrame:
        """Output manifest `name` (parquet) with the schema's columns; read on first use only.

        Raises FileNotFoundError or ValueError (pyarrow's errors derive from OSError/ValueError)."""
        if name not in self._manifests:
            self._manifests[name] = read_manifest_table(self.folder, name)
        return self._manifests[name]

    def manifests(self) -> dict[str, pd.DataFrame]:
        """All four manifests, by name."""
        return {name: self.manifest(name) for name in MANIFESTS}

    def build_settings(self) -> dict[str, Any]:
        """build.json ({} where the folder has none)."""
        return json.loads(self.build_path.read_text()) if self.build_path.is_file() else {}

    @functools.cached_property
    def classes(self) -> tuple[str, ...]:
        """The corpus's class vocabulary, recorded in build.json: a sample's `label` is the index
        of its `class` here. The nine Landscape classes where build.json records none."""
        return tuple(self.build_settings().get("classes") or CLASSES)

    def shards(self, split: str | None = None) -> list[Path]:
        """Shard files of `split` (all splits: every `data/*.tar`), sorted by name."""
        pattern = shard_glob(split) if split else f"{DATA_DIR}/*.tar"
        if self._copy:
            self._copy.fetch(pattern)
        return sorted(self.folder.glob(pattern))

    def shard(self, name: str) -> Path:
        """The local file of the shard `name` (a file name in data/, as the manifests give it),
        fetched first for a corpus at a URL; ValueError for a name that is no shard file name."""
        if not SHARD_FILE_RE.match(name):
            raise ValueError(f"{name!r} is not a shard file name ({SHARD_FILE_RE.pattern})")
        if self._copy:
            self._copy.fetch(f"{DATA_DIR}/{name}")
        return self.data_dir / name

    def fetch(self) -> None:
        """Fetch every shard of a corpus at a URL into its local copy (its other files come on
        opening); nothing for a folder."""
        if self._copy:
            self._copy.fetch(f"{DATA_DIR}/*")

    def samples(self, split: str, members: Collection[str] | None = None) -> Iterator[Sample]:
        """Every sample of `split`, shards and samples in order, with the `members` asked for
        (default: all); a shard that cannot be read raises ValueError."""
        for shard in self.shards(split):
            yield from read_shard(shard, members)
