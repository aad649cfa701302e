"""NVIDIA-format pickles (built here in the `torch_utils.persistence` format), our safetensors
checkpoints, and the CLI."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from model.stylegan3 import Generator, load_generator, read_config, save_generator
from model.stylegan3.__main__ import main

KWARGS = dict(
    z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=128, channel_max=16
)
MAPPING = {"num_layers": 2}
CANARY = "canary"


def _reconstruct_persistent_obj(meta):  # never called: the loader must not use NVIDIA's code
    raise AssertionError("the real persistence function ran")


class EasyDict(dict):
    pass


class Persistent:
    """Pickles like a module of NVIDIA's persistent classes: a call of the reconstruct function."""

    def __init__(self, class_name, state, module_src):
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def __reduce__(self):
        meta = dict(
            type="class",
            version=4,
            module_src=self.module_src,
            class_name=self.class_name,
            state=self.state,
        )
        return _reconstruct_persistent_obj, (meta,)


def as_persistent(module: torch.nn.Module, name: str, init_kwargs=None) -> Persistent:
    """A module's __dict__ as NVIDIA pickles it, children persistent too."""
    state = {k: v for k, v in vars(module).items() if k not in ("_plans",)}
    state["_modules"] = {
        k: as_persistent(m, type(m).__name__) for k, m in module._modules.items() if m is not None
    }
    state["_init_args"], state["_init_kwargs"] = (), EasyDict(init_kwargs or {})
    # Code in module_src must never run: it would write a canary file.
    src = f"open({CANARY!r}, 'w').write('pwned')\nclass {name}: pass\n"
    return Persistent(name, state, src)


@pytest.fixture
def official_modules(monkeypatch):
    """`torch_utils.persistence` and `dnnlib.util` as module names, so pickle can refer to them."""
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib_util = types.ModuleType("dnnlib.util")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    dnnlib_util.EasyDict = EasyDict
    for name, module in [("torch_utils.persistence", persistence), ("dnnlib.util", dnnlib_util)]:
        parent = types.ModuleType(name.split(".")[0])
        setattr(parent, name.split(".")[1], module)
        monkeypatch.setitem(sys.modules, parent.__name__, parent)
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    G = Generator(**KWARGS, mapping_kwargs=MAPPING).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))
        G.mapping.w_avg.normal_()
    return G


def test_official_snapshot_pickle_loads(tmp_path, monkeypatch, official_modules, generator):
    monkeypatch.chdir(tmp_path)
    init = EasyDict(
        KWARGS,
        mapping_kwargs=EasyDict(MAPPING),
        magnitude_ema_beta=0.999,
        num_fp16_res=4,
        conv_clamp=256,
    )
    snapshot = {
        "G": as_persistent(Generator(**KWARGS, mapping_kwargs=MAPPING), "Generator", init),
        "G_ema": as_persistent(generator, "Generator", init),
        "training_set_kwargs": EasyDict(path="lhq.zip", resolution=16),
    }
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(pickle.dumps(snapshot, protocol=4))
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        monkeypatch.delitem(sys.modules, name)  # a user has no NVIDIA source tree
    G = load_generator(path)
    assert not (tmp_path / CANARY).exists()
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert read_config(path)["num_fp16_res"] == 4
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            G(z, None, truncation_psi=0.7), generator(z, None, truncation_psi=0.7)
        )


def test_pickle_with_foreign_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return os.system, ("echo pwned",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="os.system|posix.system"):
        load_generator(path)


def test_pickle_without_generator_is_reported(tmp_path):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"D": 1}))
    with pytest.raises(ValueError, match="no G_ema or G"):
        load_generator(path)


def test_safetensors_round_trip_and_cli(tmp_path, generator, capsys):
    path = save_generator(generator, tmp_path / "g.safetensors")
    G = load_generator(path)
    assert read_config(path) == generator.init_kwargs
    ws = generator.mapping(torch.randn(2, 16), None)
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws), generator.synthesis(ws))
    assert main(["info", str(path)]) == 0
    assert '"img_resolution": 16' in capsys.readouterr().out
    out = tmp_path / "grid.png"
    assert main(["sample", str(path), "--seeds", "0-4", "--trunc", "0.7", "--out", str(out)]) == 0
    grid = Image.open(out)
    assert grid.size == (48, 32)  # 5 images in a 3x2 grid
    assert len(np.unique(np.asarray(grid).reshape(-1, 3), axis=0)) > 100  # a rendering, not a blank
    assert (
        main(["sample", str(path), "--seeds", "0-1", "--truncation", "0.7", "--out", str(out)]) == 0
    )
    assert Image.open(out).size == (32, 16)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "missing.pkl")]) == 2
    assert (
        capsys.readouterr().err
        == f"Error: CHECKPOINT {tmp_path / 'missing.pkl'}: no such file or folder\n"
    )
    assert main(["sample", str(path), "--seeds", "0-x"]) == 2
