"""One bounded loader for the torch files the model reads: W+ latents (`--image w.pt`), a run's
`state.pt`, and published weights (torchvision VGG16 / AlexNet, LPIPS's linear layers).

`torch.load(weights_only=True)` runs no code but bounds nothing: a zip record deflated 1000:1 is
inflated whole (a 1.9 MB file reaches 2.6 GB), a view may be declared larger than its storage, and
its unpickler fills a dict of keys that share one hash in quadratic time. `load_torch_file` reads
both of torch's formats itself, in time and memory bounded by the file's size:

- `torch.save`'s zip (torch >= 1.6): at most `MAX_RECORDS` records, each stored (torch never
  compresses), its sizes in the central directory agreeing and inside the file, all of them
  together no larger than the file; a storage's record exactly `numel x itemsize` bytes;
- the legacy format (the LPIPS package's weights): the magic number, little-endian, and each
  storage's element count in the data equal to its declaration, with its bytes there;
- `data.pkl` (or the legacy main pickle) through the StyleGAN3 loader's `SafeUnpickler`: names from
  an allow-list, bounded opcodes, nesting and sizes, dicts keyed only by hash-safe values, every
  tensor view inside its storage and no larger than it.

Anything else raises ValueError naming the file and what is wrong.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from model.config import brief
from model.stylegan3.pickle_loader import (
    CALLABLE,
    MALFORMED,
    STORAGE_DTYPES,
    SafeUnpickler,
    UnsafePickleError,
    read_legacy_header,
    storage_of,
)

MAX_RECORDS = 1 << 16
"""Most records of a zip-format file (a run's state.pt holds about three per parameter tensor)."""

EOCD = b"PK\x05\x06"  # end of central directory record
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_EOCD = b"PK\x06\x06"


def _storage_types() -> dict[tuple[str, str], torch.dtype]:
    """`torch.FloatStorage` and the like (also their legacy `torch.cuda.` names) -> dtype."""
    return {
        (module, name): dtype
        for name, dtype in STORAGE_DTYPES.items()
        for module in ("torch", "torch.cuda")
    }


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    """`torch._utils._rebuild_tensor` (files of torch < 0.4): v2 without gradient arguments."""
    return CALLABLE[("torch._utils", "_rebuild_tensor_v2")](storage, offset, size, stride)


TORCH_CALLABLE: dict[tuple[str, str], Callable[..., Any]] = {
    name: CALLABLE[name]
    for name in [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "bytes"),
        ("_codecs", "encode"),
    ]
} | {("torch._utils", "_rebuild_tensor"): _rebuild_tensor}
"""What the pickle of a torch file may call: tensors, parameters, ordered dicts, sets, bytes."""


class TorchUnpickler(SafeUnpickler):
    """`SafeUnpickler` for the pickle of a torch file: its persistent ids name storages, which
    `storage(key, dtype, numel)` returns (checked against the file's bytes); an `OrderedDict`'s
    `_metadata` (a state dict's module versions) is dropped."""

    allowed = TORCH_CALLABLE | _storage_types()
    callable = TORCH_CALLABLE

    def __init__(self, file: BinaryIO, storage: Callable[[str, torch.dtype, int], Any]):
        super().__init__(file)
        self._storage = storage

    def persistent_load(self, pid: Any) -> Any:
        if not (
            isinstance(pid, tuple)
            and len(pid) in (5, 6)
            and pid[0] == "storage"
            and isinstance(pid[1], torch.dtype)
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
            and 0 <= pid[4] < 2**48
            and pid[5:] in ((), (None,))
        ):
            raise UnsafePickleError(f"persistent id {brief(pid)} is not a storage of this file")
        return self._storage(pid[2], pid[1], pid[4])

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, collections.OrderedDict) and isinstance(state, dict):
            if set(state) - {"_metadata"}:
                raise UnsafePickleError(f"an OrderedDict given attributes {brief(list(state))}")
            self.stack.pop()
            return
        super().load_build()

    dispatch = {**SafeUnpickler.dispatch, pickle.BUILD[0]: load_build}


def load_torch_file(path: str | Path) -> Any:
    """What `torch.save` wrote to `path`, read within the bounds of the module docstring (tensors
    on the CPU). Raises ValueError naming the file; FileNotFoundError where there is none."""
    path = Path(path)
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file")
        try:
            if zipfile.is_zipfile(f):
                return _load_zip(f, info.st_size)
            f.seek(0)
            return _load_legacy(f)
        except UnsafePickleError as e:
            raise ValueError(f"{path}: {e}") from None
        except (*MALFORMED, zipfile.BadZipFile) as e:
            message = f"{type(e).__name__}: {str(e)[:200]}"
            raise ValueError(f"{path}: not a readable torch file: {message}") from None


def _zip_entries(f: BinaryIO, size: int) -> int:
    """The number of records the end of central directory declares (zip64 too)."""
    tail_start = max(0, size - (1 << 16) - 22)
    f.seek(tail_start)
    tail = f.read()
    at = tail.rfind(EOCD)
    if at < 0 or at + 22 > len(tail):
        raise UnsafePickleError("no end of central directory: not a zip file")
    (entries,) = struct.unpack_from("<H", tail, at + 10)
    if entries == 0xFFFF:
        locator = at - 20
        if locator < 0 or tail[locator : locator + 4] != ZIP64_LOCATOR:
            raise UnsafePickleError("a zip64 end of central directory without its locator")
        (record,) = struct.unpack_from("<Q", tail, locator + 8)
        if record + 56 > size:
            raise UnsafePickleError("the zip64 end of central directory lies outside the file")
        f.seek(record)
        head = f.read(56)
        if head[:4] != ZIP64_EOCD:
            raise UnsafePickleError("no zip64 end of central directory where its locator says")
        (entries,) = struct.unpack_from("<Q", head, 32)
    return entries


def _load_zip(f: BinaryIO, size: int) -> Any:
    entries = _zip_entries(f, size)
    if entries > MAX_RECORDS:
        raise UnsafePickleError(f"{entries:,} records (more than {MAX_RECORDS:,})")
    f.seek(0)
    archive = zipfile.ZipFile(f)
    records = {}
    total = 0
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise UnsafePickleError(
                f"record {brief(info.filename)} is compressed ({info.compress_size:,} bytes "
                f"declared to hold {info.file_size:,}); torch stores its records as they are"
            )
        if info.filename in records or info.header_offset + info.file_size > size:
            raise UnsafePickleError(f"record {brief(info.filename)} is repeated or past the end")
        total += info.file_size
        records[info.filename] = info
    if total > size:
        raise UnsafePickleError(f"records of {total:,} bytes in all, in a file of {size:,}")
    pickles = [name for name in records if name.endswith("/data.pkl") or name == "data.pkl"]
    if len(pickles) != 1:
        raise UnsafePickleError(f"{len(pickles)} data.pkl records where torch writes one")
    prefix = pickles[0].removesuffix("data.pkl")
    order = prefix + "byteorder"
    if order in records and archive.read(order) != b"little":
        raise UnsafePickleError("big-endian files are not supported")
    storages: dict[str, tuple[torch.dtype, int, Any]] = {}

    def storage(key: str, dtype: torch.dtype, numel: int) -> Any:
        name = f"{prefix}data/{key}"
        if key not in storages:
            if name not in records:
                raise UnsafePickleError(f"storage {brief(key)} has no record")
            data = archive.read(name)
            if len(data) != numel * dtype.itemsize:
                raise UnsafePickleError(
                    f"storage {brief(key)} declares {numel:,} elements of {dtype} and its record "
                    f"holds {len(data):,} bytes"
                )
            storages[key] = (dtype, numel, storage_of(data, dtype))
        if storages[key][:2] != (dtype, numel):
            raise UnsafePickleError(f"storage {brief(key)} is declared twice, differently")
        return storages[key][2]

    return TorchUnpickler(io.BytesIO(archive.read(pickles[0])), storage).load()


def _load_legacy(f: BinaryIO) -> Any:
    """The legacy format: header pickles, the main pickle, the storage keys, then each storage's
    element count and bytes. The main pickle is read twice: first to learn the storages it
    declares (views checked against their declared sizes), then over the storages read."""
    read_legacy_header(f)
    start = f.tell()
    declared: dict[str, tuple[torch.dtype, int]] = {}

    def declare(key: str, dtype: torch.dtype, numel: int) -> Any:
        if declared.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise UnsafePickleError(f"storage {brief(key)} is declared twice, differently")
        return storage_of(None, dtype, numel)

    TorchUnpickler(f, declare).load()
    keys = TorchUnpickler(f, declare).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(declared):
        raise UnsafePickleError("the list of storage keys differs from the storages declared")
    storages = {}
    size = os.fstat(f.fileno()).st_size
    for key in keys:
        dtype, numel = declared[key]
        count = struct.unpack("<q", f.read(8).ljust(8, b"\0"))[0]
        data = f.read(min(numel * dtype.itemsize, size - f.tell()))  # (never more than is left)
        if count != numel or len(data) != numel * dtype.itemsize:
            raise UnsafePickleError(
                f"storage {brief(key)} declares {numel:,} elements of {dtype}; the file holds "
                f"{count:,} and {len(data):,} bytes"
            )
        storages[key] = storage_of(data, dtype)
    f.seek(start)
    return TorchUnpickler(f, lambda key, dtype, numel: storages[key]).load()
