"""Safe reader of NVIDIA's StyleGAN3 snapshot pickles (`network-snapshot-*.pkl`, released models).

NVIDIA pickles each network with `torch_utils.persistence`: the object becomes a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with
`meta = {type, version, module_src, class_name, state}` (state = the module's `__dict__`, with
`_parameters`, `_buffers`, `_modules`, `_init_args`, `_init_kwargs`). `SafeUnpickler` allows only
the globals such a file needs and turns every persistent object into a `PersistentRecord`: the
embedded `module_src` is kept as text and never executed. Tensors are rebuilt by torch's own
functions; storages through `torch.load(..., weights_only=True)` on the CPU.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


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
    """EasyDicts -> dicts, recursively (for JSON configs)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentRecord:
    if meta.get("type") != "class":
        raise pickle.UnpicklingError(f"unsupported persistent object type {meta.get('type')!r}")
    return PersistentRecord(
        str(meta["class_name"]), dict(meta["state"] or {}), str(meta.get("module_src", ""))
    )


def _load_storage_from_bytes(b: bytes) -> Any:
    return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")


def _rebuild_from_type_v2(func: Any, new_type: type, args: tuple, state: Any) -> torch.Tensor:
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise pickle.UnpicklingError(f"refusing to rebuild a tensor of type {new_type!r}")
    ret = func(*args)
    return ret if new_type is torch.Tensor else torch.nn.Parameter(ret)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only an allow-list of globals (no code from the file runs)."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch", "device"): torch.device,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("_codecs", "encode"): __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "scalar",
            "dtype",
            "_reconstruct",
            "ndarray",
        ):
            import numpy as np

            core = getattr(np, "_core", None) or np.core
            return {"dtype": np.dtype, "ndarray": np.ndarray}.get(name) or getattr(
                core.multiarray, name
            )
        if module == "numpy" and name.startswith("dtypes."):  # numpy >= 1.25 dtype classes
            import numpy as np

            return getattr(np.dtypes, name.split(".", 1)[1])
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed in a StyleGAN3 snapshot (the file is not a network "
            "pickle, or it holds code this loader refuses to run)"
        )


def read_snapshot(path: str | Path) -> dict[str, Any]:
    """Unpickle a snapshot safely: a dict whose networks are `PersistentRecord`s."""
    with open(path, "rb") as f:
        data = SafeUnpickler(f).load()
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
    raise ValueError(f"{path}: no G_ema or G network in the pickle (keys: {sorted(data)})")
