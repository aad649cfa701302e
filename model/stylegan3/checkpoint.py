"""Load and save generators: NVIDIA `.pkl` snapshots, our `.safetensors` (weights + JSON config)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from model.config import brief
from model.stylegan3.networks import Generator
from model.stylegan3.pickle_loader import generator_record, read_snapshot
from model.weights import check_state, read_safetensors

CONFIG_KEY = "stylegan3_init_kwargs"  # safetensors metadata: the Generator(**kwargs) JSON

REQUIRED = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
BOUNDS: dict[str, tuple[type, float, float]] = {
    "z_dim": (int, 1, 2048),
    "c_dim": (int, 0, 16384),
    "w_dim": (int, 1, 2048),
    "img_resolution": (int, 4, 4096),
    "img_channels": (int, 1, 4),
    "channel_base": (int, 1, 2**18),
    "channel_max": (int, 1, 2048),
    "num_layers": (int, 1, 64),
    "num_critical": (int, 0, 63),
    "margin_size": (int, 0, 1024),
    "num_fp16_res": (int, 0, 32),
    "conv_kernel": (int, 1, 15),
    "filter_size": (int, 1, 64),
    "lrelu_upsampling": (int, 1, 16),
    "first_cutoff": (float, 1e-3, 4096),
    "first_stopband": (float, 1e-3, 8192),
    "last_stopband_rel": (float, 1, 16),
    "output_scale": (float, -1e6, 1e6),
    "magnitude_ema_beta": (float, 0, 1),
    "conv_clamp": (float, 0, 1e9),  # or None
    "use_radial_filters": (bool, 0, 1),
    "mapping_kwargs.num_layers": (int, 1, 32),
    "mapping_kwargs.lr_multiplier": (float, 1e-6, 1e3),
    "mapping_kwargs.w_avg_beta": (float, 0, 1),
}
"""Generator(**config) fields a checkpoint may set: (type, lowest, highest)."""
MAX_PARAMETERS = 500_000_000
"""Upper estimate of a generator's parameters a checkpoint may ask for (2 GB in float32)."""


def save_generator(G: Generator, path: str | Path) -> Path:
    """Write `G`'s state dict and constructor kwargs to one `.safetensors` file."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(G.init_kwargs, sort_keys=True)})
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The constructor kwargs stored in a checkpoint (either format), checked by `check_config`."""
    path = Path(path)
    if _is_pickle(path):
        rec = generator_record(read_snapshot(path), path)
        return check_config(_kwargs_from(rec.init_args, rec.init_kwargs), path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except SafetensorError as e:
        raise ValueError(f"{path}: not a readable safetensors file: {e}") from e
    if CONFIG_KEY not in meta:
        raise ValueError(
            f"{path}: no {CONFIG_KEY} in the safetensors metadata; not a generator saved by save_generator"
        )
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: {CONFIG_KEY} is not valid JSON: {e}") from None
    return check_config(config, path)


def check_config(config: Any, where: str | Path = "config") -> dict[str, Any]:
    """`config` if it is a Generator(**config) within `BOUNDS`; else ValueError naming the field.

    Runs before the network is built, so a checkpoint cannot make the loader allocate much.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the generator config is a {type(config).__name__}, not a dict")
    mapping = config.get("mapping_kwargs") or {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: mapping_kwargs is a {type(mapping).__name__}, not a dict")
    fields = {k: v for k, v in config.items() if k != "mapping_kwargs"}
    fields |= {f"mapping_kwargs.{k}": v for k, v in mapping.items()}
    for name in REQUIRED:
        if name not in fields:
            raise ValueError(f"{where}: the generator config lacks {name}")
    for name, value in fields.items():
        if name not in BOUNDS:
            raise ValueError(
                f"{where}: unknown generator config field {_name(name)}={brief(value)}"
            )
        kind, lo, hi = BOUNDS[name]
        if name == "conv_clamp" and value is None:
            continue
        finite = not isinstance(value, float) or math.isfinite(value)  # (an int may pass float's)
        if not (_of_kind(value, kind) and finite and lo <= value <= hi):
            raise ValueError(
                f"{where}: generator config {name}={brief(value)} is outside [{lo:g}, {hi:g}] "
                f"({kind.__name__})"
            )
    layers = fields.get("num_layers", 14)
    if fields.get("num_critical", 2) >= layers:
        raise ValueError(
            f"{where}: generator config num_critical must be below num_layers={layers}"
        )
    channels, kernel = fields.get("channel_max", 512), fields.get("conv_kernel", 3)
    w_dim = fields["w_dim"]
    estimate = (layers + 1) * channels * (channels * kernel**2 + w_dim) + (
        fields.get("mapping_kwargs.num_layers", 2) + 1
    ) * w_dim * (w_dim + fields["z_dim"] + fields["c_dim"])
    if estimate > MAX_PARAMETERS:
        raise ValueError(
            f"{where}: generator config num_layers={layers}, channel_max={channels}, "
            f"conv_kernel={kernel}, w_dim={w_dim} allows up to {estimate:,} parameters "
            f"(more than {MAX_PARAMETERS:,})"
        )
    return config


def _name(key: Any) -> str:
    """A field name for a message: as it is where it is short text, else `brief`'s repr."""
    return key if isinstance(key, str) and len(key) <= 60 else brief(key)


def _of_kind(value: Any, kind: type) -> bool:
    """bool for bool; int (not bool) for int; int or float (not bool) for float."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, int if kind is int else (int, float))


def _kwargs_from(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return path.suffix == ".pkl" or head[:1] == b"\x80"


def load_generator(
    path: str | Path, device: str | torch.device = "cpu", allow_nonfinite: bool = False
) -> Generator:
    """A `Generator` in eval mode, parameters frozen, from an official `.pkl` or our `.safetensors`.

    The config is checked (`check_config`) before the network is built, and every tensor's name,
    dtype and shape against the network before it is copied in; NaN or infinite weights are
    refused unless `allow_nonfinite`. Raises ValueError naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if _is_pickle(path):
        rec = generator_record(read_snapshot(path), path)
        config = check_config(_kwargs_from(rec.init_args, rec.init_kwargs), path)
        G = Generator(**config)
        state = rec.state_dict()
        check_state(str(path), state, G.state_dict(), allow_nonfinite)
    else:
        G = Generator(**read_config(path))
        state = read_safetensors(path, G.state_dict(), allow_nonfinite)
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False).to(device)
