"""The one reader of shard tars, streaming and bounded by the shard's size: every reader of shards
(`Corpus`, `verify`, the model's loader and `model.prepare`) goes through `read_samples`, and the
viewer's index of members' places (`corpus.index_shard`) through `read_members`.

Python's `tarfile` reads a GNU long name or a PAX header whole and keeps every header it has
read, so an 11 MB shard can take gigabytes and a shard of millions of empty members minutes. This
reader parses the headers itself (ustar, GNU long names, PAX records) and keeps none of them:

- a long name is at most `TarBounds.name_bytes`, a PAX header at most `pax_bytes`, and at most
  `extensions` of them precede an entry;
- entries without data (folders, links, empty files) are at most `empty_entries`, so every other
  entry costs at least a block of data, and a compressed shard (gzip, bzip2, xz) may expand to at
  most `expansion` times its size (or `min_stream`): the work is bounded by the file's size;
- a sample holds at most `sample_members` members, and after `refused` refused members the shard
  is refused whole;
- a member's name and size are judged by `schema.member_problem` from its header; a refused one
  is skipped unread, seeking where the file is not compressed.

A shard that breaks a bound, or that is damaged, raises `ShardUnreadable` (a ValueError) saying
why, and nothing past that point is read.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from landscape_av.schema import MAX_MEMBER_BYTES, member_problem, split_member

BLOCK = 512

Refused = Callable[[str, str, str], None]
"""`refused(key, name, reason)`: a member skipped unread; `key` is the sample it came in ("-":
before the first)."""


class ShardUnreadable(ValueError):
    """A shard not read past some point: damaged, or past a bound (the message says which);
    `key`: the sample it cut ("-": none)."""

    key = "-"


@dataclass(frozen=True)
class TarBounds:
    """Bounds on the work one shard may ask of a reader."""

    name_bytes: int = 4096  # a GNU long name (PATH_MAX); a member's is `<key>.<ext>`, short
    pax_bytes: int = 64 << 10  # a PAX header's records (tarfile writes a few hundred bytes)
    empty_entries: int = 1024  # entries without data: folders, links, empty files
    sample_members: int = 8  # members of one sample (a corpus sample has 4, a prepared one 3)
    refused: int = 100  # members refused before the shard is
    member_bytes: int = MAX_MEMBER_BYTES  # a member read
    expansion: int = 64  # a compressed shard's tar stream, in multiples of the file's size
    min_stream: int = 32 << 20  # ... or at least this
    extensions: int = 8  # extension headers (long names, PAX) before one entry


BOUNDS = TarBounds()


@dataclass(frozen=True)
class Entry:
    """One entry of a tar: its name, its data size, whether it is a regular file, and where its
    data starts in the tar stream (the file's byte offset where the shard is not compressed)."""

    name: str
    size: int
    is_file: bool
    offset: int


def shown(name: str, width: int = 100) -> str:
    """repr of a member name for a message, cut to `width` characters (a PAX name may be long)."""
    return repr(name if len(name) <= width else name[:width] + "...")


def read_samples(
    path: str | os.PathLike[str],
    members: Collection[str] | None = None,
    refused: Refused | None = None,
    bounds: TarBounds = BOUNDS,
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) of each sample of the shard at `path`, in tar order, one sample in
    memory at a time; a sample is the run of consecutive members `KEY.ext` sharing a key.

    Only the members whose extension is in `members` (default: all) are read; the others, and
    the members `read_members` refuses, are skipped unread. Raises ShardUnreadable where the
    shard is damaged or breaks a bound (the sample it cut is not yielded)."""
    key: str | None = None
    found: dict[str, bytes] = {}
    try:
        for base, ext, _entry, read in read_members(path, refused, bounds):
            if base != key:
                if key is not None:
                    yield key, found
                key, found = base, {}
            if members is None or ext in members:
                found[ext] = read()
    except ShardUnreadable as e:
        e.key = key or "-"
        raise
    if key is not None:
        yield key, found


def read_members(
    path: str | os.PathLike[str],
    refused: Refused | None = None,
    bounds: TarBounds = BOUNDS,
    compressed: bool = True,
) -> Iterator[tuple[str, str, Entry, Callable[[], bytes]]]:
    """(key, ext, entry, read) of each member of the shard at `path` that passes the checks, in
    tar order (`read` as `read_entries` gives it). A member that is not a regular file, that
    `schema.member_problem` refuses, that repeats an extension of its sample (the first is kept)
    or that passes `bounds.sample_members` is skipped unread and told to `refused`; past
    `bounds.refused` of them the shard is refused whole. `compressed=False` refuses a compressed
    shard (whose `Entry.offset`s are no places in the file). Raises ShardUnreadable where the
    shard is damaged or breaks a bound."""
    count = 0

    def refuse(key: str | None, name: str, reason: str) -> None:
        nonlocal count
        count += 1
        if count > bounds.refused:
            raise ShardUnreadable(
                f"more than {bounds.refused} members refused: not a shard of this corpus"
            )
        if refused is not None:
            refused(key or "-", name, reason)

    key: str | None = None
    seen: set[str] = set()
    for entry, read in read_entries(path, bounds, compressed):
        problem = (
            member_problem(entry.name, entry.size, bounds.member_bytes)
            if entry.is_file
            else "not a file"
        )
        if problem:
            refuse(key, entry.name, problem)
            continue
        base, ext = split_member(entry.name)
        if base != key:
            key, seen = base, set()
        if ext in seen:
            refuse(key, entry.name, "appears twice in its sample")
        elif len(seen) >= bounds.sample_members:
            refuse(key, entry.name, f"more than {bounds.sample_members} members in one sample")
        else:
            seen.add(ext)
            yield base, ext, entry, read


def read_entries(
    path: str | os.PathLike[str], bounds: TarBounds = BOUNDS, compressed: bool = True
) -> Iterator[tuple[Entry, Callable[[], bytes]]]:
    """Each entry of the tar at `path` (plain, or where `compressed`, gzip / bzip2 / xz
    compressed) with a function that reads its data (valid until the next entry; unread data is
    skipped: a plain file reads a header's 512 bytes per entry and seeks past the data).
    Extension headers (GNU long names, PAX) are applied to the entry they precede, not yielded.
    Raises ShardUnreadable (see the module docstring)."""
    with open(path, "rb", buffering=0) as raw:  # unbuffered: no read-ahead past a header
        stream = _Stream(raw, os.fstat(raw.fileno()).st_size, bounds)
        if not (stream.plain or compressed):
            raise ShardUnreadable("a compressed shard: its members have no places in the file")
        try:
            with stream.file:
                yield from _entries(stream, bounds)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:  # compressed data damaged
            raise ShardUnreadable(f"unreadable: {type(e).__name__}: {e}") from None


class _Stream:
    """The tar bytes of a file, decompressed where it is compressed, with a budget on their
    total and skipping by seeking where the file is plain."""

    def __init__(self, raw: BinaryIO, size: int, bounds: TarBounds):
        head = raw.read(6)
        raw.seek(0)
        opener = next((o for magic, o in _COMPRESSED if head.startswith(magic)), None)
        self.file: BinaryIO = opener(raw) if opener else raw
        self.plain, self.size = opener is None, size
        self.budget = max(bounds.min_stream, bounds.expansion * size)  # (a compressed file's)
        self.offset = 0

    def read(self, n: int) -> bytes:
        if not self.plain and self.offset + n > self.budget:
            raise ShardUnreadable(
                f"the compressed shard expands past {self.budget:,} bytes (at most "
                f"{self.budget // max(self.size, 1):,} times its size)"
            )
        data = self.file.read(n)
        self.offset += len(data)
        return data

    def skip(self, n: int) -> None:
        if self.plain:
            if self.offset + n > self.size:
                raise ShardUnreadable("truncated: the file ends inside a member's data")
            self.file.seek(n, os.SEEK_CUR)
            self.offset += n
            return
        while n > 0:
            got = len(self.read(min(n, 1 << 20)))
            if not got:
                raise ShardUnreadable("truncated: the file ends inside a member's data")
            n -= got


_COMPRESSED: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)),
    (b"BZh", lambda f: bz2.BZ2File(f)),
    (b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f)),  # noqa: SIM115 - closed with the stream
)

_FILE_TYPES = (b"0", b"\0", b"7")  # regular, old regular, contiguous
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, folder, FIFO: size unused
_PAX_RECORD = re.compile(rb"(\d{1,6}) ")


def _entries(stream: _Stream, bounds: TarBounds) -> Iterator[tuple[Entry, Callable[[], bytes]]]:
    long_name: str | None = None
    pax: dict[str, str] = {}
    empty = extensions = 0
    while True:
        start = stream.offset
        block = stream.read(BLOCK)
        if not block:
            if start == 0:
                raise ShardUnreadable("empty file: not a tar")
            return  # the end, without end-of-archive blocks (tarfile accepts it too)
        if len(block) < BLOCK:
            raise ShardUnreadable(f"truncated: the file ends inside the header at byte {start:,}")
        if block == bytes(BLOCK):
            return  # end of archive
        kind, name, size = _header(block, start)
        padded = -(-size // BLOCK) * BLOCK
        if kind in (b"L", b"K", b"x", b"X", b"g"):  # extension headers
            extensions += 1
            if extensions > bounds.extensions:
                raise ShardUnreadable(
                    f"more than {bounds.extensions} extension headers before the entry at byte "
                    f"{start:,}"
                )
            limit = bounds.name_bytes if kind in (b"L", b"K") else bounds.pax_bytes
            if size > limit:
                what = "long name" if kind in (b"L", b"K") else "PAX header"
                raise ShardUnreadable(
                    f"a {what} of {size:,} bytes at byte {start:,} (the bound is {limit:,})"
                )
            data = stream.read(padded)[:size]
            if len(data) < size:
                raise ShardUnreadable("truncated: the file ends inside an extension header")
            if kind == b"L":
                long_name = _text(data.split(b"\0", 1)[0])
            elif kind in (b"x", b"X"):
                pax.update(_pax_records(data, start))
            elif kind == b"g" and {"path", "size"} & set(_pax_records(data, start)):
                raise ShardUnreadable(f"a global PAX header at byte {start:,} sets path or size")
            continue
        if kind == b"S" or any(k.startswith("GNU.sparse") for k in pax):
            raise ShardUnreadable(f"a sparse member at byte {start:,}: not a shard's member")
        name = pax.get("path", long_name if long_name is not None else name)
        if "size" in pax:
            size = _pax_size(pax["size"], start)
            padded = -(-size // BLOCK) * BLOCK
        long_name, pax, extensions = None, {}, 0
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"  # an old-style folder
        if kind == b"5":
            name = name.rstrip("/")  # as tarfile names folders
        is_file = kind in _FILE_TYPES
        has_data = kind not in _NO_DATA_TYPES and size > 0
        if not has_data:
            empty += 1
            if empty > bounds.empty_entries:
                raise ShardUnreadable(
                    f"more than {bounds.empty_entries:,} entries without data: not a shard"
                )
        if kind in _NO_DATA_TYPES:
            size = padded = 0
        data_start, consumed = stream.offset, False

        def read(size: int = size, data_start: int = data_start, name: str = name) -> bytes:
            nonlocal consumed
            if consumed or stream.offset != data_start:
                raise RuntimeError("an entry's data is read once, before the next entry")
            consumed = True
            data = stream.read(size)
            if len(data) < size:
                raise ShardUnreadable(f"truncated: the file ends inside {shown(name)}")
            return data

        yield Entry(name, size, is_file, data_start), read
        stream.skip(padded - (stream.offset - data_start))


def _header(block: bytes, start: int) -> tuple[bytes, str, int]:
    """(type flag, name, size) of a 512-byte header, its checksum checked."""
    stored = _octal(block[148:156], "checksum", start)
    unsigned = 256 + sum(block[:148]) + sum(block[156:])
    if stored != unsigned:  # some writers sum the bytes as signed
        high = sum(b > 127 for b in block[:148]) + sum(b > 127 for b in block[156:])
        if stored != unsigned - 256 * high:
            raise ShardUnreadable(f"not a tar header at byte {start:,} (bad checksum)")
    name = _text(block[:100].split(b"\0", 1)[0])
    if block[257:265] == b"ustar\x0000":  # POSIX: a prefix of the name
        prefix = _text(block[345:500].split(b"\0", 1)[0])
        name = f"{prefix}/{name}" if prefix else name
    field = block[124:136]
    if field[0] & 0x80:  # GNU base-256
        size = int.from_bytes(field[1:], "big") - (256**11 if field[0] == 0xFF else 0)
    else:
        size = _octal(field, "size", start)
    if size < 0:
        raise ShardUnreadable(f"a negative size in the header at byte {start:,}")
    return block[156:157], name, size


def _octal(field: bytes, what: str, start: int) -> int:
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits or b"0", 8)
    except ValueError:
        raise ShardUnreadable(f"not a tar header at byte {start:,} (bad {what})") from None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, start: int) -> dict[str, str]:
    """`LEN key=value\\n` records of a PAX header (LEN counts the whole record)."""
    records, pos = {}, 0
    while pos < len(data) and data[pos] != 0:
        match = _PAX_RECORD.match(data, pos)
        length = int(match.group(1)) if match else 0
        record = data[match.end() : pos + length] if match else b""
        if not match or length < len(match.group(0)) + 2 or not record.endswith(b"\n"):
            raise ShardUnreadable(f"a malformed PAX record in the header at byte {start:,}")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise ShardUnreadable(f"a malformed PAX record in the header at byte {start:,}")
        records[_text(key)] = _text(value)
        pos += length
    return records


def _pax_size(value: str, start: int) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise ShardUnreadable(f"a PAX size {value[:30]!r} at byte {start:,} is not a size")
    return int(value)
