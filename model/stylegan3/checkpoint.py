"""Load and save generators: NVIDIA `.pkl` snapshots, our `.safetensors` (weights + JSON config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.stylegan3.networks import Generator
from model.stylegan3.pickle_loader import generator_record, read_snapshot

CONFIG_KEY = "stylegan3_init_kwargs"  # safetensors metadata: the Generator(**kwargs) JSON


def save_generator(G: Generator, path: str | Path) -> Path:
    """Write `G`'s state dict and constructor kwargs to one `.safetensors` file."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(G.init_kwargs, sort_keys=True)})
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The constructor kwargs stored in a checkpoint (either format)."""
    path = Path(path)
    if _is_pickle(path):
        rec = generator_record(read_snapshot(path), path)
        return _kwargs_from(rec.init_args, rec.init_kwargs)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if CONFIG_KEY not in meta:
        raise ValueError(
            f"{path}: no {CONFIG_KEY} in the safetensors metadata; not a generator saved by save_generator"
        )
    return json.loads(meta[CONFIG_KEY])


def _kwargs_from(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return path.suffix == ".pkl" or head[:1] == b"\x80"


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A `Generator` in eval mode, parameters frozen, from an official `.pkl` or our `.safetensors`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if _is_pickle(path):
        rec = generator_record(read_snapshot(path), path)
        config, state = _kwargs_from(rec.init_args, rec.init_kwargs), rec.state_dict()
    else:
        config = read_config(path)
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    G = Generator(**config)
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False).to(device)
