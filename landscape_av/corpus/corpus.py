"""`Corpus(folder)`: the one way to read a built corpus folder.

It knows the folder's paths (`schema` layout), reads each output manifest once, and iterates
shards (per split) and their samples. A sample is the run of consecutive tar members `KEY.ext`
that share a key; the split of a member name into key and extension lives here
(`split_member`), and so does the checked tar reading: streaming (`read_shard`) or by the
members' places in the file (`index_shard`, for reading one member or a range of it alone)::

    corpus = Corpus("landscape-av")
    clips = corpus.manifest("clips")                  # pandas DataFrame, read once
    for sample in corpus.samples("train", members=("json", "mp4")):
        sample.key, sample.members["mp4"]              # bytes
"""

from __future__ import annotations

import functools
import json
import os
import re
import tarfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_av.classes import CLASSES
from landscape_av.corpus.manifests import manifest_path, read_manifest_table
from landscape_av.schema import (
    BUILD_FILE,
    CARD_FILE,
    DATA_DIR,
    FIGURES_DIR,
    MANIFESTS,
    SHARD_FILE_RE,
    member_problem,
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


def split_member(name: str) -> tuple[str, str]:
    """(key, extension) of a shard member name `KEY.ext`: keys hold no dots, so the extension is
    all after the first one (`abc_00.frames.npy` -> `frames.npy`); "" where there is none."""
    key, _, ext = name.partition(".")
    return key, ext


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
    """The samples of one shard, in tar order, streamed (one sample in memory at a time).

    Only the members whose extension is in `members` (default: all) are read. An entry that is
    not a regular file or that `schema.member_problem` refuses from its header (a path, no
    extension, a bad key, over the size bound), and a member seen twice in a
    sample, is passed to `report` and skipped (the later copy kept); damage to the tar is reported
    and ends the reading, dropping the sample it cut. Without `report`, each raises ValueError
    naming the shard.
    """
    path = Path(path)
    problem = _problem_reporter(path, report)
    key: str | None = None
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                base, ext = split_member(info.name)
                refused = member_problem(info.name, info.size) if info.isfile() else "not a file"
                if refused:  # not read
                    problem(key or "-", "-", f"unexpected tar entry {info.name!r}: {refused}")
                    continue
                if base != key:
                    if key is not None:
                        yield Sample(key, found)
                    key, found = base, {}
                if members is not None and ext not in members:
                    continue
                if ext in found:
                    problem(key, ext, "member appears twice")
                found[ext] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        problem(key or "-", "-", f"tar unreadable after this point: {err}")
        return  # the sample it cut is not trusted
    if key is not None:
        yield Sample(key, found)


MAX_SHARD_ENTRIES = 100_000
"""Most tar entries `index_shard` reads from one shard (a shard of 1,000 samples holds 4,000)."""
MAX_EXTENDED_HEADER = 64 << 10
"""Largest pax or GNU long-name header `index_shard` reads (bytes); the build writes none."""
_BLOCK = tarfile.BLOCKSIZE
_EXTENSIONS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME)
_FILES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


@dataclass(frozen=True)
class Member:
    """Where a member's bytes lie in its (uncompressed) shard file."""

    offset: int
    size: int


def index_shard(
    path: Path, report: Report | None = None, max_entries: int = MAX_SHARD_ENTRIES
) -> dict[str, dict[str, Member]]:
    """key -> extension -> `Member` of every member of the shard `path`, from its tar headers alone
    (one 512-byte block read per entry, then a seek past its data), so that a member, or a range
    of one, can be read without the rest of the shard.

    Bounded and checked like `read_shard`: an entry that is not a regular file or that
    `schema.member_problem` refuses is skipped, and a member seen twice keeps its later copy; past
    `max_entries` entries, at a damaged header, at a pax or GNU long-name header over
    `MAX_EXTENDED_HEADER` bytes or at an entry running past the end of the file, the index stops.
    Each goes to `report`; without it, each raises ValueError naming the shard."""
    path = Path(path)
    problem = _problem_reporter(path, report)
    index: dict[str, dict[str, Member]] = {}
    entries = _tar_entries(path, max_entries)
    while True:
        try:
            name, is_file, member = next(entries)
        except StopIteration:
            break
        except ValueError as err:
            problem("-", "-", f"{err}: the rest is not read")
            break
        refused = member_problem(name, member.size) if is_file else "not a file"
        if refused:
            problem("-", "-", f"unexpected tar entry {name!r}: {refused}")
            continue
        key, ext = split_member(name)
        found = index.setdefault(key, {})
        if ext in found:
            problem(key, ext, "member appears twice")
        found[ext] = member
    return index


def _tar_entries(path: Path, max_entries: int) -> Iterator[tuple[str, bool, Member]]:
    """(name, is a regular file, place of its data) of each entry of an uncompressed tar, pax and
    GNU long names applied; ValueError where the tar cannot be read on (see `index_shard`)."""
    extended: dict[str, str] = {}  # a pax or long-name header's fields, for the entry after it
    with open(path, "rb", buffering=0) as f:
        fd, pos = f.fileno(), 0
        end = os.fstat(fd).st_size
        for count in range(max_entries + 1):
            block = os.pread(fd, _BLOCK, pos)  # 512 bytes read per header, nothing more
            if len(block) < _BLOCK or not block.strip(b"\0"):
                return  # the end-of-archive blocks (or none)
            if count == max_entries:
                raise ValueError(f"over {max_entries:,} tar entries")
            name, kind, size = _tar_header(block, pos)
            extension = kind in _EXTENSIONS
            size = size if extension else int(extended.get("size", size))
            data, pos = pos + _BLOCK, pos + _BLOCK + -(-size // _BLOCK) * _BLOCK
            if extension and size > MAX_EXTENDED_HEADER:
                raise ValueError(
                    f"{size:,}-byte tar extension header at byte {data - _BLOCK:,} "
                    f"(over {MAX_EXTENDED_HEADER:,})"
                )
            if data + size > end:
                raise ValueError(f"tar entry {name!r} runs past the end of the file")
            if not extension:
                yield extended.get("path", name), kind in _FILES, Member(data, size)
                extended = {}
            elif kind == tarfile.GNUTYPE_LONGNAME:
                text = os.pread(fd, size, data).split(b"\0", 1)[0]
                extended["path"] = text.decode("utf-8", "surrogateescape")
            elif kind == tarfile.XHDTYPE:
                extended |= _pax_fields(os.pread(fd, size, data))


def _tar_header(block: bytes, pos: int) -> tuple[str, bytes, int]:
    """(name, type flag, data size) of the tar header `block` (ustar, GNU or v7; at byte `pos`),
    its checksum checked: the few fields an index needs, read by POSIX's layout."""

    def number(field: bytes) -> int:
        if field[:1] == b"\x80":  # GNU base-256, for sizes past 8 GB
            return int.from_bytes(field[1:], "big")
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)

    try:
        checksum = number(block[148:156])
        size = number(block[124:136])
    except ValueError:
        raise ValueError(f"tar header at byte {pos:,} unreadable (not a number)") from None
    if checksum != sum(block[:148]) + 256 + sum(block[156:]):  # the checksum field as spaces
        raise ValueError(f"tar header at byte {pos:,} unreadable (bad checksum)")
    name = block[:100].split(b"\0", 1)[0]
    if block[257:265] == b"ustar\x0000":  # POSIX ustar: the name's prefix
        prefix = block[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return name.decode("utf-8", "surrogateescape"), block[156:157], size


_PAX_LENGTH = re.compile(rb"(\d{1,8}) ")


def _pax_fields(text: bytes) -> dict[str, str]:
    """The `path` and `size` of a pax header's records (`LEN key=value\\n` each)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text) and text[pos:].strip(b"\0"):
        head = _PAX_LENGTH.match(text, pos)
        length = int(head.group(1)) if head else 0
        record = text[pos : pos + length]
        if not head or length <= len(head.group(0)) or not record.endswith(b"\n"):
            raise ValueError(f"bad pax record at byte {pos} of its header")
        key, _, value = record[len(head.group(0)) : -1].partition(b"=")
        if key == b"size" and not value.isdigit():
            raise ValueError(f"bad pax size {value[:20]!r}")
        if key in (b"path", b"size"):
            fields[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return fields


def shard_keys(path: Path) -> list[str]:
    """The sample keys of a shard in order, from its tar headers alone (no member is read)."""
    keys: list[str] = []
    with tarfile.open(path) as tar:
        for name in tar.getnames():
            key = split_member(name)[0]
            if not keys or keys[-1] != key:
                keys.append(key)
    return keys


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
