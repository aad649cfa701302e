"""Read the tensors of a torch zip archive (a `torch.save` state dict or a TorchScript `.jit`) inert.

Both formats are a zip with `<root>/data.pkl`, a pickle naming its tensors' storages by key, and
`<root>/data/<key>`, each storage's raw bytes. The pickle is untrusted, so it is read by a
restricted unpickler that runs no code of the archive and imports nothing:

- globals resolve only to `ALLOWED`: rebuilding a tensor (checked to lie inside its storage),
  storage dtypes, `OrderedDict`, TorchScript's `build_intlist`; a TorchScript class
  (`__torch__.*`) becomes an inert `Record` holding its attributes, its code never loaded;
- a storage is read from its zip entry, which must hold exactly `numel * itemsize` bytes, and the
  sum of all of them is bounded (`max_bytes`), as is the pickle itself (`max_pickle`);
- the result is flattened into `{dotted.name: tensor}` with bounded depth and size, so a pickle
  that shares one container many times cannot make the walk explode.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MAX_PICKLE = 1 << 20
"""Largest data.pkl read (the models here have 6 kB and 17 kB)."""
MAX_BYTES = 256 << 20
"""Largest sum of storage bytes read (the models here have 2 MB and 30 MB)."""
MAX_DEPTH = 32
MAX_ITEMS = 100_000
_STORAGE_KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


class UnsafeArchiveError(ValueError):
    """The archive is not a torch zip that this reader loads safely (the message says why)."""


class Record:
    """An object of a TorchScript class, as data: `class_name` and its attributes (`state`)."""

    class_name = ""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnsafeArchiveError(f"{self.class_name}: state is not a dict of names")
        self.state = state


class _Dtype:
    """A storage type of the pickle (`torch.FloatStorage`): only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


_STORAGES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rebuild_tensor(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2`, once the view is known to lie inside its storage."""
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise UnsafeArchiveError(f"tensor rebuilt over a {type(storage).__name__}")
    size, stride = tuple(size), tuple(stride)
    if not (
        len(size) == len(stride) <= 8
        and all(_is_int(v) and v >= 0 for v in (*size, *stride, offset))
        and isinstance(requires_grad, bool)
        and not hooks
        and not metadata
    ):
        raise UnsafeArchiveError(f"tensor view size={size} stride={stride} offset={offset}")
    numel = math.prod(size)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if numel and last >= storage.numel():
        raise UnsafeArchiveError(f"tensor of shape {list(size)} reaches past its storage")
    return torch.as_strided(storage, size, stride, offset).clone()


def _build_intlist(values: Any) -> list[int]:
    if not isinstance(values, list) or not all(_is_int(v) for v in values):
        raise UnsafeArchiveError("build_intlist of something other than ints")
    return list(values)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise UnsafeArchiveError("OrderedDict called with arguments")
    return OrderedDict()


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
} | {("torch", name): _Dtype(dtype) for name, dtype in _STORAGES.items()}
"""The globals an archive's pickle may name, mapped to what they resolve to here."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_storage: Callable[[torch.dtype, str, int], torch.Tensor]):
        super().__init__(io.BytesIO(data))
        self.read_storage = read_storage
        self.records: dict[str, type[Record]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__.") or module == "__torch__":
            qualified = f"{module}.{name}"
            if qualified not in self.records:
                self.records[qualified] = type(name, (Record,), {"class_name": qualified})
            return self.records[qualified]
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        raise UnsafeArchiveError(f"the pickle names {module}.{name}, which is not allowed")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeArchiveError(f"unknown persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _Dtype) or not isinstance(key, str) or not _is_int(numel):
            raise UnsafeArchiveError(f"bad storage reference {pid!r:.80}")
        if not _STORAGE_KEY_RE.match(key):
            raise UnsafeArchiveError(f"bad storage key {key!r:.40}")
        return self.read_storage(kind.dtype, key, numel)


def read_tensors(
    path: str | Path, *, max_pickle: int = MAX_PICKLE, max_bytes: int = MAX_BYTES
) -> dict[str, torch.Tensor]:
    """Every tensor of the torch zip archive at `path`, by dotted attribute path (a state dict's
    own keys; `_model.encoder.0.reparam_conv.weight` for a TorchScript module). Raises
    UnsafeArchiveError (or zipfile.BadZipFile) for anything else."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UnsafeArchiveError(f"{path}: {len(pickles)} <root>/data.pkl entries, not one")
        root = pickles[0].split("/")[0]
        order = f"{root}/byteorder"
        if order in archive.namelist() and archive.read(order).strip() != b"little":
            raise UnsafeArchiveError(f"{path}: not little-endian")
        info = archive.getinfo(pickles[0])
        if info.file_size > max_pickle:
            raise UnsafeArchiveError(f"{path}: data.pkl is {info.file_size} bytes (> {max_pickle})")
        storages: dict[str, torch.Tensor] = {}
        total = 0

        def read_storage(dtype: torch.dtype, key: str, numel: int) -> torch.Tensor:
            nonlocal total
            if key in storages:
                if storages[key].dtype != dtype:
                    raise UnsafeArchiveError(f"{path}: storage {key} read as two dtypes")
                return storages[key]
            entry = archive.getinfo(f"{root}/data/{key}")
            itemsize = torch.empty((), dtype=dtype).element_size()
            if entry.file_size != numel * itemsize:
                raise UnsafeArchiveError(
                    f"{path}: storage {key} has {entry.file_size} bytes, not {numel} x {itemsize}"
                )
            total += entry.file_size
            if total > max_bytes:
                raise UnsafeArchiveError(f"{path}: storages exceed {max_bytes} bytes")
            raw = bytearray(archive.read(entry))
            storages[key] = (
                torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            )
            return storages[key]

        try:
            obj = _Unpickler(archive.read(info), read_storage).load()
        except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, KeyError) as e:
            raise UnsafeArchiveError(f"{path}: unreadable pickle ({type(e).__name__}: {e})") from e
    tensors: dict[str, torch.Tensor] = {}
    _flatten(obj, "", tensors, [0], 0)
    return tensors


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: list[int], depth: int):
    seen[0] += 1
    if seen[0] > MAX_ITEMS or depth > MAX_DEPTH:
        raise UnsafeArchiveError("the archive's objects nest too deep or too wide")
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, Record):
        _flatten(obj.state, prefix, out, seen, depth + 1)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str):
                _flatten(value, f"{prefix}{key}.", out, seen, depth + 1)
