"""Safe reader of NVIDIA's StyleGAN3 snapshot pickles (`network-snapshot-*.pkl`, released models).

NVIDIA pickles each network with `torch_utils.persistence`: the object becomes a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with
`meta = {type, version, module_src, class_name, state}` (state = the module's `__dict__`, with
`_parameters`, `_buffers`, `_modules`, `_init_args`, `_init_kwargs`). `SafeUnpickler` turns every
persistent object into a `PersistentRecord`: the embedded `module_src` is kept as text and never
executed.

The file is untrusted, so the unpickler (Python's own opcode loop with a few opcodes replaced):
- resolves only the names in `ALLOWED` (each named in full; protocol-2 names such as
  `__builtin__.set` are mapped to their Python 3 homes first), and calls only the ones in
  `CALLABLE`, each a checked wrapper that builds a new object and changes no module's state;
- lets BUILD set state only on the NumPy arrays and plain dtypes it made itself, NEWOBJ make only
  EasyDicts, APPEND/SETITEM/ADDITEMS fill only lists/dicts/sets not yet used elsewhere;
- bounds the opcodes run, the nesting depth and the size every container would have with its
  memo-shared parts written out (`LIMITS`), so a traversal of any result finishes quickly;
- keys dicts and sets only by values whose hashes a file cannot make collide (`hash_safe`: text,
  bytes, None, bools, floats, integers within 2^60; a snapshot keys its dicts by names), so no
  container is built in quadratic time, and memo indices likewise;
- formats what it refuses with `model.config.brief`, never whole;
- refuses a length that claims more bytes than the file has before allocating it;
- rebuilds storages from the bytes in the file (never larger than those bytes) and checks every
  tensor's shape, strides and offset against its storage.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import math
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from model.config import brief


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle is not a snapshot this loader reads safely (what is wrong is in the message)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the work a pickle can ask for."""

    ops: int = 2_000_000  # opcodes run (a 1024-px snapshot runs about 10^5)
    depth: int = 100  # nesting of containers and calls
    expanded: int = 1_000_000  # objects in a container with its shared parts written out


LIMITS = Limits()


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


@dataclass
class PersistentRecord:
    """A persistent object of the pickle, as data: its class name and its `__dict__`."""

    class_name: str
    state: dict[str, Any]
    module_src: str = field(default="", repr=False)

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return _plain(self.state.get("_init_kwargs", {}))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this module and its children, torch-style names."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set", ()))
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None and name not in skip:
                    out[prefix + name] = (
                        torch.Tensor(value.detach())
                        if isinstance(value, torch.nn.Parameter)
                        else value
                    )
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out


def _plain(value: Any) -> Any:
    """EasyDicts -> dicts, recursively (for JSON configs; the unpickler bounded the work)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _refuse(message: str) -> UnsafePickleError:
    return UnsafePickleError(message)


# ----------------------------------------------------------------------------------------------
# The callables a snapshot may call, each checking its arguments


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _refuse(f"unsupported persistent object {type(meta).__name__}")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise _refuse(f"persistent object state is a {type(state).__name__}, not a dict")
    name, src = meta.get("class_name"), meta.get("module_src", "")
    if not isinstance(name, str) or not isinstance(src, str):
        raise _refuse(f"persistent object class name {brief(name)} or its source is not text")
    return PersistentRecord(name, dict(state), src)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _empty_hooks(hooks: Any) -> None:
    if hooks:
        raise _refuse("tensor carries backward hooks")


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2`, once the view is known to lie inside its storage."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _refuse(f"tensor rebuilt over a {type(storage).__name__}, not a storage")
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
    if not (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride) <= 32
        and all(_is_int(v) and 0 <= v < 2**48 for v in (*size, *stride))
        and _is_int(storage_offset)
        and 0 <= storage_offset < 2**48
    ):
        raise _refuse(
            f"tensor view size={brief(size)} stride={brief(stride)} "
            f"offset={brief(storage_offset)} is invalid"
        )
    available = storage._untyped_storage.nbytes() // storage.dtype.itemsize
    numel = math.prod(size)
    if numel > available or (
        numel > 0
        and storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        >= available
    ):
        raise _refuse(
            f"tensor of shape {list(size)} (stride {list(stride)}, offset {storage_offset}) reaches "
            f"past its storage of {available} elements"
        )
    if not isinstance(requires_grad, bool) or metadata not in (None, {}):
        raise _refuse("tensor rebuild arguments are invalid")
    _empty_hooks(backward_hooks)
    t = torch.empty((0,), dtype=storage.dtype, device=storage._untyped_storage.device)
    return t.set_(storage._untyped_storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
    if type(data) is not torch.Tensor or not isinstance(requires_grad, bool):
        raise _refuse("parameter rebuilt from something other than a tensor")
    _empty_hooks(backward_hooks)
    return torch.nn.Parameter(data, requires_grad)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if func is not _rebuild_tensor_v2 or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise _refuse(f"refusing to rebuild a tensor with {brief(func)} as {brief(new_type)}")
    if not isinstance(args, tuple) or state not in (None, {}):
        raise _refuse("tensor rebuild arguments are invalid")
    ret = _rebuild_tensor_v2(*args)
    return ret if new_type is torch.Tensor else torch.nn.Parameter(ret)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode` as protocol 2 uses it for bytes: `encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _refuse("_codecs.encode is admitted only for latin1 text")
    return codecs.encode(text, "latin1")


def _empty_bytes() -> bytes:
    """`bytes()`: protocol 2 writes `b''` as a call of `__builtin__.bytes` without arguments."""
    return b""


def _np_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """A new (never the shared, cached) plain-data dtype."""
    if not isinstance(spec, str) or not isinstance(align, bool):
        raise _refuse(f"numpy dtype {brief(spec)} is not a plain type name")
    dt = np.dtype(spec, align=align, copy=True)
    if dt.hasobject:
        raise _refuse("numpy object dtypes are refused")
    return dt


def _np_scalar(dtype: Any, data: Any = b"") -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _refuse("numpy scalar of an object dtype or without bytes")
    if len(data) != dtype.itemsize:
        raise _refuse(f"numpy scalar of {len(data)} bytes for a {dtype.itemsize}-byte dtype")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray or shape != (0,):
        raise _refuse("numpy arrays are rebuilt only as plain ndarrays")
    return np.ndarray((0,), dtype=np.uint8)


def _set_array_state(arr: np.ndarray, state: Any) -> None:
    """`ndarray.__setstate__` once the data is plain bytes of exactly the declared size."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise _refuse("numpy array state is invalid")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not (
        isinstance(shape, tuple)
        and all(_is_int(n) and n >= 0 for n in shape)
        and isinstance(dtype, np.dtype)
        and not dtype.hasobject
        and isinstance(data, bytes)
        and len(data) == math.prod(shape) * dtype.itemsize
    ):
        raise _refuse("numpy array state does not match its data")
    arr.__setstate__(state)


def _set_dtype_state(dt: np.dtype, state: Any) -> None:
    """`dtype.__setstate__` once `state` is a plain dtype's: (3, byte order, None, None, None,
    itemsize, alignment, flags), no fields, subarrays or metadata, small numbers."""
    if not (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and state[0] in (3, 4)
        and state[1] in ("<", ">", "|", "=")
        and all(v is None for v in (*state[2:5], *state[8:]))
        and all(_is_int(v) and -(2**31) <= v < 2**31 for v in state[5:8])
    ):
        raise _refuse(f"numpy dtype state {brief(state)} is not a plain dtype's")
    dt.__setstate__(state)
    if dt.hasobject:
        raise _refuse("numpy object dtypes are refused")


def hash_safe(key: Any) -> bool:
    """Whether `key` may key a dict or set of the pickle: a value whose hash a file cannot make
    collide with many others' (text and bytes hash with this process's random key; integers
    within 2^60 hash to themselves, floats and bools collide in handfuls at most). Tuples,
    large integers and other objects can be made to collide by the thousand, and filling a dict
    with such keys takes time quadratic in their number."""
    return (
        key is None
        or isinstance(key, str | bytes | bool | float)
        or (isinstance(key, int) and key.bit_length() <= 60)
    )


def _check_keys(keys: Any) -> None:
    for key in keys:
        if not hash_safe(key):
            raise _refuse(
                f"a dict or set keyed by {brief(key)} ({type(key).__name__}): only text, bytes "
                "and small numbers may key them (others can be made to share one hash)"
            )


def _set(items: Any = ()) -> set:
    """`set(items)`, as protocol 2 writes a set: from a list of hash-safe items."""
    if not isinstance(items, list):
        raise _refuse("set() is admitted only of a list")
    _check_keys(items)
    return set(items)


def _ordered_dict(items: Any = ()) -> collections.OrderedDict:
    """`OrderedDict(items)`: empty (the pickle fills it with SETITEMS), or of a list of (key,
    value) pairs with hash-safe keys, as older pickles write it."""
    if not isinstance(items, list | tuple) or not all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in items
    ):
        raise _refuse("OrderedDict() is admitted only of a list of (key, value) pairs")
    _check_keys(pair[0] for pair in items)
    return collections.OrderedDict(items)


def _np_names(name: str) -> list[tuple[str, str]]:
    return [(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")]


CALLABLE: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("collections", "OrderedDict"): _ordered_dict,
    ("builtins", "set"): _set,
    ("builtins", "bytes"): _empty_bytes,
    ("_codecs", "encode"): _encode,
    ("numpy", "dtype"): _np_dtype,
    **dict.fromkeys(_np_names("scalar"), _np_scalar),
    **dict.fromkeys(_np_names("_reconstruct"), _np_reconstruct),
}
"""Names a snapshot may call (REDUCE), each bound to a wrapper that checks its arguments.
`torch.storage._load_from_bytes` is added below."""

ALLOWED: dict[tuple[str, str], Any] = {
    **CALLABLE,
    ("dnnlib.util", "EasyDict"): EasyDict,  # only NEWOBJ'd, never called
    ("torch", "Tensor"): torch.Tensor,  # only as the type argument of _rebuild_from_type_v2
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("numpy", "ndarray"): np.ndarray,  # only as the type argument of _reconstruct
}
"""Every global a snapshot may name."""


# ----------------------------------------------------------------------------------------------
# The unpickler


class _BoundedFile:
    """A binary file whose reads may not ask for more bytes than are left in it."""

    def __init__(self, f: BinaryIO, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._left
        if n > self._left:
            raise _refuse(f"the pickle claims {n} bytes where {self._left} are left in the file")
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(self._left)
        self._left -= len(line)
        return line


_dispatch = pickle._Unpickler.dispatch  # type: ignore[attr-defined]
_MAKERS = {op[0] for op in (pickle.LIST, pickle.TUPLE, pickle.DICT, pickle.FROZENSET)} | {
    op[0] for op in (pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)
}


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Unpickler of an allow-list of globals, with bounded work (see the module docstring)."""

    allowed: dict[tuple[str, str], Any] = ALLOWED
    callable: dict[tuple[str, str], Callable[..., Any]] = CALLABLE

    def __init__(self, file: BinaryIO, limits: Limits = LIMITS):
        pos = file.tell()
        try:
            size = os.fstat(file.fileno()).st_size - pos
        except (AttributeError, OSError):
            size = file.seek(0, io.SEEK_END) - pos
            file.seek(pos)
        super().__init__(_BoundedFile(file, size), encoding="ASCII")
        self.limits = limits
        self._calls = {id(f) for f in self.callable.values()}
        self._size: dict[int, int] = {}  # id -> objects with shared parts written out
        self._depth: dict[int, int] = {}
        self._used: set[int] = set()  # ids of objects placed in a container or passed to a call
        self._keep: list[Any] = []  # keeps ids unique while loading

    # -- bookkeeping

    def _measure(self, obj: Any, children: list[Any]) -> None:
        """Record `obj` as made of (or grown by) `children`; refuse past the limits."""
        size = self._size.get(id(obj), 1) + sum(self._size.get(id(c), 1) for c in children)
        depth = max(
            [self._depth.get(id(obj), 0)] + [self._depth.get(id(c), 0) + 1 for c in children]
        )
        if size > self.limits.expanded:
            raise _refuse(
                f"a container holds more than {self.limits.expanded:,} objects once its "
                "memo-shared parts are counted each time they are used"
            )
        if depth > self.limits.depth:
            raise _refuse(f"containers are nested more than {self.limits.depth} deep")
        if id(obj) not in self._size:
            self._keep.append(obj)
        self._size[id(obj)], self._depth[id(obj)] = size, depth
        self._used.update(id(c) for c in children)
        self._keep.extend(children)

    def _fill(self, target: Any, kind: type, children: list[Any]) -> None:
        if not isinstance(target, kind):
            raise _refuse(f"the pickle adds items to a {type(target).__name__}")
        if id(target) in self._used:
            raise _refuse("the pickle changes a container after using it")
        if any(c is target for c in children):
            raise _refuse("a container holds itself")
        self._measure(target, children)

    # -- opcodes

    def load(self) -> Any:
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # type: ignore[attr-defined]
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, self.dispatch
        try:
            for _ in range(self.limits.ops):
                key = read(1)
                if not key:
                    raise EOFError("the pickle ends before its STOP opcode")
                op = key[0]
                dispatch[op](self)
                if op in _MAKERS:
                    made = self.stack[-1]
                    items = [*made.keys(), *made.values()] if isinstance(made, dict) else list(made)
                    self._measure(made, items)
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            return stop.value
        raise _refuse(f"the pickle runs more than {self.limits.ops:,} opcodes")

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _refuse(
                f"{module}.{name} is not allowed in a StyleGAN3 snapshot (the file is not a "
                "network pickle, or it holds code this loader refuses to run)"
            ) from None

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in self._calls or not isinstance(args, tuple):
            raise _refuse(f"the pickle calls {brief(func)}, which is not a callable it may call")
        result = func(*args)
        self._measure(result, [args])
        self.stack[-1] = result

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if cls is not EasyDict or args:
            raise _refuse(f"the pickle creates a {brief(cls)} object")
        self.append(EasyDict())

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        if kwargs:
            raise _refuse("the pickle creates an object with keyword arguments")
        self.load_newobj()

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if id(inst) in self._used or id(inst) not in self._size:
            raise _refuse(f"the pickle sets the state of a {type(inst).__name__} it did not make")
        if isinstance(inst, np.ndarray):
            _set_array_state(inst, state)
        elif isinstance(inst, np.dtype):
            _set_dtype_state(inst, state)
        else:
            raise _refuse(f"the pickle sets the state of a {type(inst).__name__}")
        self._measure(inst, [state])

    def load_append(self) -> None:
        value = self.stack.pop()
        self._fill(self.stack[-1], list, [value])
        self.stack[-1].append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._fill(self.stack[-1], list, items)
        self.stack[-1].extend(items)

    def load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        _check_keys([key])
        self._fill(self.stack[-1], dict, [key, value])
        self.stack[-1][key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        _check_keys(items[::2])
        self._fill(self.stack[-1], dict, items)
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        _check_keys(items)
        self._fill(self.stack[-1], set, items)
        self.stack[-1].update(items)

    def load_dict(self) -> None:
        items = self.pop_mark()
        _check_keys(items[::2])
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        _check_keys(items)
        self.append(frozenset(items))

    def load_put(self) -> None:
        i = int(self.readline()[:-1])
        if not 0 <= i < 2**32:  # as BINPUT's; other numbers could collide in the memo
            raise _refuse(f"memo index {brief(i)} is out of range")
        self.memo[i] = self.stack[-1]

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(n)))  # read() refuses n past the end of the file

    def load_inst(self) -> None:
        raise _refuse("the pickle uses INST/OBJ (protocol 0/1 class instances)")

    load_obj = load_inst

    dispatch = {
        **_dispatch,
        **{
            getattr(pickle, name.removeprefix("load_").upper())[0]: method
            for name, method in list(locals().items())
            if name.startswith("load_")
        },
    }
    """pickle's opcode table, each opcode OP whose `load_op` is defined above replaced by it."""


# ----------------------------------------------------------------------------------------------
# Storages: torch's legacy serialization of one storage, read without trusting its sizes

STORAGE_DTYPES = {
    f"{name}Storage": dtype
    for name, dtype in [
        ("Float", torch.float32),
        ("Double", torch.float64),
        ("Half", torch.float16),
        ("BFloat16", torch.bfloat16),
        ("Long", torch.int64),
        ("Int", torch.int32),
        ("Short", torch.int16),
        ("Char", torch.int8),
        ("Byte", torch.uint8),
        ("Bool", torch.bool),
    ]
}


class _StorageHeader(SafeUnpickler):
    """The small pickles in front of a storage's bytes: names resolve to dtypes, nothing is called."""

    allowed = {("torch", name): dtype for name, dtype in STORAGE_DTYPES.items()}
    callable = {}

    def persistent_load(self, pid: Any) -> Any:
        return pid


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_VERSION = 1001


def read_legacy_header(f: BinaryIO) -> dict:
    """Read the three pickles that open torch's legacy format (magic number, protocol version,
    system info) from `f`; refuse other formats and big-endian data. Returns the system info."""
    magic, version, info = (_StorageHeader(f).load() for _ in range(3))
    if magic != LEGACY_MAGIC or version != LEGACY_VERSION or not isinstance(info, dict):
        raise _refuse("not in torch's legacy format")
    if not info.get("little_endian", False):
        raise _refuse("big-endian storages are not supported")
    return info


def storage_of(
    data: bytes | None, dtype: torch.dtype, numel: int = 0
) -> torch.storage.TypedStorage:
    """A storage of `dtype` over a copy of `data`; for None, a placeholder of `numel` elements on
    the meta device (shapes only, nothing allocated)."""
    if data is None:
        flat = torch.empty(numel, dtype=dtype, device="meta")
    else:
        flat = (
            torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)
        )
    return torch.storage.TypedStorage(
        wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True
    )


def _load_storage(blob: Any) -> torch.storage.TypedStorage:
    """`torch.storage._load_from_bytes`: the storage is exactly as large as the bytes that follow.

    Layout (torch.save's legacy format): magic number, protocol version, system info, then
    `persistent_id(('storage', type, key, location, numel, None))`, the list of keys, and per key an
    int64 element count followed by the raw little-endian elements.
    """
    if not isinstance(blob, bytes):
        raise _refuse("storage data is not bytes")
    f = io.BytesIO(blob)
    read_legacy_header(f)
    record, keys = _StorageHeader(f).load(), _StorageHeader(f).load()
    if not (
        isinstance(record, tuple)
        and len(record) in (5, 6)
        and record[0] == "storage"
        and record[5:] in ((), (None,))
        and isinstance(record[1], torch.dtype)
        and _is_int(record[4])
        and keys == [record[2]]
    ):
        raise _refuse(f"storage record {brief(record)} is invalid")
    dtype, numel = record[1], record[4]
    (count,) = struct.unpack("<q", f.read(8).ljust(8, b"\0"))
    data = f.read()
    itemsize = dtype.itemsize
    if numel < 0 or count != numel or len(data) != numel * itemsize:
        raise _refuse(
            f"storage claims {numel} elements ({count} in its data header) but holds "
            f"{len(data)} bytes of {itemsize}-byte elements"
        )
    return storage_of(data, dtype)


CALLABLE[("torch.storage", "_load_from_bytes")] = _load_storage
ALLOWED[("torch.storage", "_load_from_bytes")] = _load_storage


MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    struct.error,
    RuntimeError,
)
"""What a malformed stream makes the opcode loop or a checked callable raise."""


def read_snapshot(path: str | Path) -> dict[str, Any]:
    """Unpickle a snapshot safely: a dict whose networks are `PersistentRecord`s.

    Raises UnsafePickleError (a ValueError) naming the file and what is wrong with it.
    """
    try:
        with open(path, "rb") as f:
            data = SafeUnpickler(f).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except MALFORMED as e:  # what the opcode loop or a checked callable raised
        raise UnsafePickleError(
            f"{path}: not a readable snapshot: {type(e).__name__}: {str(e)[:200]}"
        ) from e
    if isinstance(data, PersistentRecord):  # a bare pickled generator
        data = {"G_ema": data}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of networks, got {type(data).__name__}")
    return data


def generator_record(data: dict[str, Any], path: str | Path = "<pickle>") -> PersistentRecord:
    """The generator of a snapshot: `G_ema`, else `G`."""
    for key in ("G_ema", "G"):
        rec = data.get(key)
        if isinstance(rec, PersistentRecord):
            if "synthesis.input.freqs" not in rec.state_dict():
                raise ValueError(
                    f"{path}: {key} is not a StyleGAN3 generator (no synthesis.input.freqs)"
                )
            return rec
    raise ValueError(f"{path}: no G_ema or G network in the pickle (keys: {brief(list(data))})")
