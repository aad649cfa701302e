"""Weights from files other people made: every tensor named, typed and shaped as the network expects,
and finite, before it is copied into the network (`load_state_dict` would cast a float64 or int8
tensor silently and keep NaNs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _check_kind(
    where: str, name: str, dtype: torch.dtype | None, shape: list[int], want: torch.Tensor
) -> None:
    if dtype != want.dtype:
        raise ValueError(f"{where}: {name} is {dtype}, the network expects {want.dtype}")
    if list(shape) != list(want.shape):
        raise ValueError(
            f"{where}: {name} has shape {list(shape)}, the network expects {list(want.shape)}"
        )


def _check_names(
    where: str, names: set[str], expected: Mapping[str, torch.Tensor], strict: bool
) -> None:
    missing = sorted(set(expected) - names)
    extra = sorted(names - set(expected)) if strict else []
    if missing or extra:
        raise ValueError(
            f"{where}: tensors do not match the network (missing: {missing[:5]}, "
            f"unexpected: {extra[:5]})"
        )


def check_finite(where: str, tensors: Mapping[str, torch.Tensor], allow_nonfinite: bool) -> None:
    """Raise naming the first floating-point tensor holding NaN or infinity (unless allowed)."""
    if allow_nonfinite:
        return
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{where}: {name} holds NaN or infinite values (allow_nonfinite / "
                "--allow-nonfinite loads it anyway)"
            )


def check_state(
    where: str,
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    allow_nonfinite: bool = False,
) -> None:
    """`state` has exactly the names of `expected`, each with its dtype and shape, all finite."""
    _check_names(where, set(state), expected, strict=True)
    for name, want in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor):
            raise ValueError(f"{where}: {name} is a {type(got).__name__}, not a tensor")
        _check_kind(where, name, got.dtype, list(got.shape), want)
    check_finite(where, state, allow_nonfinite)


def read_safetensors(
    path: str | Path,
    expected: Mapping[str, torch.Tensor],
    allow_nonfinite: bool = False,
    strict: bool = True,
) -> dict[str, torch.Tensor]:
    """The tensors of `expected`'s names from a `.safetensors` file, dtypes and shapes checked from
    the header before any data is read. `strict=False` ignores tensors the file has beyond those."""
    where = str(path)
    try:
        with safe_open(where, framework="pt") as f:
            _check_names(where, set(f.keys()), expected, strict)
            for name, want in expected.items():
                info = f.get_slice(name)
                dtype = SAFETENSORS_DTYPES.get(info.get_dtype())
                _check_kind(where, name, dtype or info.get_dtype(), info.get_shape(), want)
            tensors = {name: f.get_tensor(name) for name in expected}
    except SafetensorError as e:
        raise ValueError(f"{where}: not a readable safetensors file: {e}") from e
    check_finite(where, tensors, allow_nonfinite)
    return tensors
