"""NVIDIA-format pickles (built here in the `torch_utils.persistence` format), our safetensors
checkpoints, and the CLI."""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from model.stylegan3 import Generator, load_generator, read_config, save_generator
from model.stylegan3.__main__ import main
from model.stylegan3.pickle_loader import read_snapshot

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


@pytest.mark.parametrize("protocol", [2, 4])
def test_official_snapshot_pickle_loads(
    tmp_path, monkeypatch, official_modules, generator, protocol
):
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
        # NumPy values as NVIDIA's layers keep them (sizes as arrays, rates as float64 scalars)
        "numpy": [np.array([[16, 16]], dtype=np.int64), np.float64(0.5), np.float32(2.0), {1, 2}],
    }
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    _forget_official_modules(monkeypatch)
    G = load_generator(path)
    assert not (tmp_path / CANARY).exists()
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert read_config(path)["num_fp16_res"] == 4
    array, *rest = read_snapshot(path)["numpy"]
    assert array.dtype == np.int64 and array.tolist() == [[16, 16]] and rest == [0.5, 2.0, {1, 2}]
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


# ----------------------------------------------------------------------------------------------
# The official-format fixtures, as NVIDIA pickles of protocol 2 and 4


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", ["t64", "r64"])
def test_fixture_snapshots_load_bit_exactly(
    tmp_path, monkeypatch, official_modules, shared_dir, name, protocol
):
    path = shared_dir / "fixtures" / "stylegan3" / f"{name}.pt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    d = torch.load(path, weights_only=True)
    kwargs = json.loads(d["init_kwargs"])
    G = Generator(**kwargs)
    G.load_state_dict(d["state_dict"])
    init = EasyDict(kwargs, mapping_kwargs=EasyDict(kwargs["mapping_kwargs"]))
    snapshot = tmp_path / f"{name}-p{protocol}.pkl"
    snapshot.write_bytes(pickle.dumps({"G_ema": as_persistent(G, "Generator", init)}, protocol))
    _forget_official_modules(monkeypatch)
    loaded = load_generator(snapshot)
    assert read_config(snapshot) == kwargs
    got = loaded.state_dict()
    assert got.keys() == d["state_dict"].keys()
    for k, v in d["state_dict"].items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
    with torch.no_grad():
        img = loaded.synthesis(d["ws"][:1])
    assert (img - d["img"][:1]).abs().max().item() < 1e-3


def _forget_official_modules(monkeypatch) -> None:
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        monkeypatch.delitem(sys.modules, name)  # a user has no NVIDIA source tree


# ----------------------------------------------------------------------------------------------
# Hostile files: each ends in one clear error, quickly, in bounded memory, changing nothing

LOAD = "from model.stylegan3 import load_generator"


class Reduce:
    """Pickles as `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def storage_blob(numel: int, data: bytes) -> bytes:
    """torch's legacy serialization of one float storage that claims `numel` elements."""
    marker = object()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is marker:
                return ("storage", torch.FloatStorage, "0", "cpu", numel, None)
            return None

    buf = io.BytesIO()
    info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    for value in (0x1950A86A20F9469CFC6C, 1001, info):
        pickle.dump(value, buf, protocol=2)
    Pickler(buf, protocol=2).dump(marker)
    pickle.dump(["0"], buf, protocol=2)
    return buf.getvalue() + struct.pack("<q", numel) + data


def tensor_view(storage, offset: int, size: tuple, stride: tuple) -> Reduce:
    return Reduce(
        torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict()
    )


def one_float_storage() -> Reduce:
    return Reduce(torch.storage._load_from_bytes, storage_blob(1, struct.pack("<f", 1.0)))


def _hostile_snapshots(tmp_path, generator) -> dict[str, tuple[bytes, str]]:
    """name -> (pickle bytes, what the error must say)."""
    init = EasyDict(KWARGS, mapping_kwargs=EasyDict(MAPPING))

    def snapshot(init=init, w_avg=None, protocol=4, **extra) -> bytes:
        rec = as_persistent(generator, "Generator", init)
        if w_avg is not None:  # a new dict: the state's own one is the generator's
            mapping = rec.state["_modules"]["mapping"].state
            mapping["_buffers"] = {**mapping["_buffers"], "w_avg": w_avg}
        return pickle.dumps({"G_ema": rec, **extra}, protocol=protocol)

    shared = [0]
    for _ in range(40):
        shared = [shared] * 10  # 10^40 leaves once the memo references are written out
    w = KWARGS["w_dim"]
    huge_storage = Reduce(torch.storage._load_from_bytes, storage_blob(2**40, b"\0" * 64))
    dtypes_call = (  # numpy.dtypes._add_dtype_helper(OrderedDict, "Float64DType")
        b"\x80\x04\x8c\x05numpy\x8c\x18dtypes._add_dtype_helper\x93"
        b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93\x8c\x0cFloat64DType\x86R."
    )
    dtype_state = (  # dtype('f8') whose state declares an itemsize of 10**400
        b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNN"
        + pickle.dumps(10**400, protocol=2)[2:-1]
        + b"J\xff\xff\xff\xffK\x00tb."
    )
    class_attr = (  # BUILD (None, {"__getattr__": OrderedDict}) on a class: a setattr on it
        b"\x80\x02cdnnlib.util\nEasyDict\nN}X\x0b\x00\x00\x00__getattr__"
        b"ccollections\nOrderedDict\ns\x86b."
    )
    flood = [i * COLLIDE for i in range(1, 50_001)]  # 50,000 integers of one hash
    pushes = [pickle.dumps(k, protocol=2)[2:-1] for k in flood]  # the opcodes of each
    ints, pairs = b"".join(pushes), b"".join(push + b"N" for push in pushes)  # (k, None) pairs
    return {
        "memo-shared nesting": (snapshot(EasyDict(init, junk=shared)), "memo-shared"),
        # Containers of colliding keys, written opcode by opcode (building them here would take
        # as long as the attack): EMPTY_SET MARK ... ADDITEMS, set(list), FROZENSET, SETITEMS
        "set of colliding integers": (b"\x80\x04\x8f(" + ints + b"\x90.", "keyed by 230584300"),
        "set() of colliding integers": (
            b"\x80\x02c__builtin__\nset\n](" + ints + b"e\x85R.",
            "keyed by 230584300",
        ),
        "frozenset of colliding integers": (b"\x80\x04(" + ints + b"\x91.", "keyed by 230584300"),
        "dict of colliding integers": (
            b"\x80\x02}(" + pairs + b"u.",
            "keyed by 230584300",
        ),
        "memo indices that collide": (_colliding_memo(flood), "memo index"),
        "2,000 references to a 1 MB string": (
            snapshot(EasyDict(init, junk=["x" * 2**20] * 2000)),
            "unknown generator config field junk=['xxx",
        ),
        "z_dim 10**400": (
            snapshot(EasyDict(init, z_dim=10**400)),
            "z_dim=<an integer of about 401",
        ),
        "z_dim of 4,000 digits": (
            snapshot(EasyDict(init, z_dim=10**3999)),
            "z_dim=<an integer of about 4000 digits> is outside [1, 2048]",
        ),
        "numpy dtype state of 10**400": (dtype_state, "numpy dtype state"),
        "storage smaller than its view": (
            snapshot(w_avg=tensor_view(one_float_storage(), 0, (w,), (1,))),
            "past its storage of 1 elements",
        ),
        "view past the end": (
            snapshot(w_avg=tensor_view(one_float_storage(), 3, (1,), (1,))),
            "past its storage",
        ),
        "huge shape": (
            snapshot(w_avg=tensor_view(one_float_storage(), 0, (2**40,), (0,))),
            "past its storage",
        ),
        "storage claiming 2^40 elements": (
            snapshot(w_avg=tensor_view(huge_storage, 0, (w,), (1,))),
            "storage claims 1099511627776 elements",
        ),
        "channel_base 2^24": (
            snapshot(EasyDict(init, channel_base=2**24, channel_max=2**15)),
            "channel_base=16777216",
        ),
        "numpy.dtypes call": (dtypes_call, "numpy.dtypes._add_dtype_helper is not allowed"),
        "class attribute through BUILD": (class_attr, "sets the state of a type it did not"),
    }


COLLIDE = 2**61 - 1
"""Python hashes an integer modulo this: its multiples all hash to 0."""


def _colliding_memo(keys: list[int]) -> bytes:
    """A protocol-0 pickle that memoizes an item under each of `keys` (PUT takes any integer)."""
    puts = b"".join(b"I0\np%d\n0" % k for k in keys)
    return b"(" + puts + b"l."


@pytest.mark.slow
def test_hostile_pickles_fail_fast_in_bounded_memory(
    tmp_path, monkeypatch, official_modules, generator, guarded
):
    files = {}
    for i, (name, (data, message)) in enumerate(_hostile_snapshots(tmp_path, generator).items()):
        path = tmp_path / f"hostile-{i}.pkl"
        path.write_bytes(data)
        files[str(path)] = (name, message)
    _forget_official_modules(monkeypatch)
    results, changed, _ = guarded(LOAD, "load_generator(arg)", list(files))
    for r in results:
        name, message = files[r["arg"]]
        assert r["error"] is not None and message in r["error"], (name, r["error"])
        assert r["error"].startswith(("UnsafePickleError", "ValueError")), (name, r["error"])
        assert r["arg"] in r["error"], name  # the file is named
        assert r["seconds"] < 5, (name, r["seconds"])
        assert r["grew"] < 500 << 20, (name, r["grew"])
    assert changed == []


def test_cli_reports_a_hostile_pickle_in_one_line(
    tmp_path, monkeypatch, official_modules, generator, guarded
):
    hostile = _hostile_snapshots(tmp_path, generator)
    names = ["memo-shared nesting", "z_dim 10**400", "numpy dtype state of 10**400"]
    files = {}
    for i, name in enumerate(names):
        files[tmp_path / f"hostile-{i}.pkl"] = hostile[name][1]
        (tmp_path / f"hostile-{i}.pkl").write_bytes(hostile[name][0])
    _forget_official_modules(monkeypatch)
    setup = "from model.stylegan3.__main__ import main"
    results, _, stderr = guarded(setup, 'main(["info", arg])', [str(f) for f in files])
    assert [r["value"] for r in results] == ["2"] * len(files), results
    assert all(r["seconds"] < 5 for r in results), results
    lines = stderr.strip().splitlines()  # one line a file, naming it and the problem
    assert len(lines) == len(files), stderr
    for line, (path, message) in zip(lines, files.items(), strict=True):
        assert line.startswith(f"Error: {path}") and message in line, line


def _safetensors_with(tmp_path, generator, name, change=None, config=None) -> Path:
    tensors = {k: v.detach().clone().contiguous() for k, v in generator.state_dict().items()}
    if change is not None:
        tensors["mapping.fc0.weight"] = change(tensors["mapping.fc0.weight"])
    meta = {"stylegan3_init_kwargs": json.dumps(config or generator.init_kwargs)}
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _with_nan(t: torch.Tensor) -> torch.Tensor:
    t[0, 0] = float("nan")
    return t


@pytest.mark.parametrize(
    "name,change,message",
    [
        ("f64", lambda t: t.double(), "mapping.fc0.weight is torch.float64"),
        ("i8", lambda t: t.to(torch.int8), "mapping.fc0.weight is torch.int8"),
        ("nan", _with_nan, "mapping.fc0.weight holds NaN"),
        ("shape", lambda t: t[:, :2].contiguous(), "mapping.fc0.weight has shape"),
    ],
)
def test_safetensors_of_other_dtypes_or_nonfinite_values_are_refused(
    tmp_path, generator, name, change, message
):
    path = _safetensors_with(tmp_path, generator, name, change)
    with pytest.raises(ValueError, match=message) as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_nonfinite_weights_load_when_allowed(tmp_path, generator):
    G = load_generator(
        _safetensors_with(tmp_path, generator, "nan", _with_nan), allow_nonfinite=True
    )
    assert torch.isnan(G.mapping.fc0.weight).sum() == 1


def test_info_refuses_nonfinite_weights_unless_allowed(tmp_path, generator, capsys):
    from model.stylegan3.__main__ import main

    path = _safetensors_with(tmp_path, generator, "nan", _with_nan)
    assert main(["info", str(path)]) != 0
    assert "holds NaN" in capsys.readouterr().err
    assert main(["info", str(path), "--allow-nonfinite"]) == 0


def test_safetensors_config_out_of_bounds_is_refused_before_allocating(
    tmp_path, generator, guarded
):
    paths = {
        "z_dim=17179869184": {**generator.init_kwargs, "z_dim": 2**34},
        "channel_base=16777216": {
            **generator.init_kwargs,
            "channel_base": 2**24,
            "channel_max": 2**15,
        },
        "mapping_kwargs.num_layers=100000": {
            **generator.init_kwargs,
            "mapping_kwargs": {"num_layers": 10**5},
        },
        "unknown generator config field evil": {**generator.init_kwargs, "evil": 1},
    }
    files = {
        str(_safetensors_with(tmp_path, generator, f"cfg{i}", config=cfg)): field
        for i, (field, cfg) in enumerate(paths.items())
    }
    results, changed, _ = guarded(LOAD, "load_generator(arg)", list(files))
    for r in results:
        assert r["error"] and files[r["arg"]] in r["error"], r
        assert r["seconds"] < 5 and r["grew"] < 500 << 20, r
    assert changed == []
