"""The bounded torch-file loader (`model.torch_files`): what torch.load reads, it reads the same;
what would make torch.load inflate, allocate or hash without bound, it refuses quickly, in one
line naming the file."""

from __future__ import annotations

import importlib.util
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from model import runtime
from model.torch_files import load_torch_file

COLLIDE = 2**61 - 1  # Python hashes an integer modulo this: its multiples all hash to 0


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (
            type(a) is type(b)
            and (a.dtype, a.shape, a.stride()) == (b.dtype, b.shape, b.stride())
            and torch.equal(a, b)
        )
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def test_it_reads_what_torch_load_reads(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    rt = runtime.Runtime(device=torch.device("cpu"))
    folder = runtime.Checkpointer(tmp_path / "run").save(1, {"net": model}, {"opt": opt}, None, rt)
    values = {
        "w+": torch.randn(1, 16, 32),
        "views": {"p": torch.nn.Parameter(torch.ones(3)), "v": torch.arange(10)[2:8:2]},
        "mixed": {"h": torch.ones(2, dtype=torch.bfloat16), "s": {1, 2}, "b": b"ab", "t": (1, 2.5)},
        "state dict": model.state_dict(),
    }
    files = [folder / "state.pt"]
    for i, value in enumerate(values.values()):
        for legacy in (False, True):  # torch.save's zip, and the format of older weights
            files.append(tmp_path / f"{i}-{legacy}.pt")
            torch.save(value, files[-1], _use_new_zipfile_serialization=not legacy)
    lpips = importlib.util.find_spec("lpips")
    if lpips is not None and lpips.origin is not None:  # published weights (legacy, saved on CUDA)
        files += sorted((Path(lpips.origin).parent / "weights" / "v0.1").glob("*.pth"))
    for path in files:
        assert _same(load_torch_file(path), torch.load(path, map_location="cpu")), path


# ----------------------------------------------------------------------------------------------
# Hostile files, each made here


class _Storage:
    """Pickles as the persistent id of a float storage of `numel` elements (key "0"); the legacy
    format's id has a sixth item."""

    def __init__(self, numel: int, legacy: bool = False):
        self.numel, self.legacy = numel, legacy


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) + (None,) * obj.legacy
        return None


def _tensor(numel: int, size: tuple, stride: tuple, legacy: bool = False) -> _Reduce:
    rebuild = torch._utils._rebuild_tensor_v2
    return _Reduce(rebuild, _Storage(numel, legacy), 0, size, stride, False, OrderedDict())


def _torch_zip(path: Path, data_pkl: bytes, record: bytes | int) -> Path:
    """A zip as torch.save writes it: `data_pkl` and the storage record "0", stored as it is, or
    (an int) that many zero bytes deflated, written 1 MiB at a time."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        if isinstance(record, bytes):
            z.writestr("archive/data/0", record)
        else:
            info = zipfile.ZipInfo("archive/data/0")
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as f:
                block = bytes(1 << 20)
                for _ in range(record >> 20):
                    f.write(block)
        z.writestr("archive/version", "3\n")
    return path


def _legacy(path: Path, obj, data: bytes) -> Path:
    """torch.save's legacy format: magic number, protocol, system info, `obj`'s pickle, the storage
    keys ["0"], then storage "0": its element count in data, and `data`."""
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4, "long": 8}}
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, info))
    count = (len(data) // 4).to_bytes(8, "little")
    path.write_bytes(head + _pickled(obj) + pickle.dumps(["0"], protocol=2) + count + data)
    return path


def _pickled(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _colliding_dict(n: int) -> bytes:
    """The pickle of a dict of `n` integer keys of one hash, written opcode by opcode."""
    keys = b"".join(pickle.dumps(k * COLLIDE, protocol=2)[2:-1] + b"N" for k in range(1, n + 1))
    return b"\x80\x02}(" + keys + b"u."


W_SHAPE = (1, 16, 32)


def _hostile_files(tmp_path: Path, names: list[str] | None = None) -> dict[str, tuple[Path, str]]:
    """name -> (a torch file, what its refusal must say), for `names` (default: all)."""
    huge = 1 << 27  # float elements: 512 MiB
    makers = {
        "deflated record (zip bomb)": (
            lambda p: _torch_zip(p, _pickled(_tensor(huge, (huge,), (1,))), 4 * huge),
            "is compressed",
        ),
        "storage declared larger than its record": (
            lambda p: _torch_zip(p, _pickled(_tensor(2**40, W_SHAPE, (512, 32, 1))), bytes(64)),
            "its record holds 64 bytes",
        ),
        "view past its storage": (
            lambda p: _torch_zip(p, _pickled(_tensor(16, (2**40,), (1,))), bytes(64)),
            "reaches past its storage",
        ),
        "legacy storage declared larger than its data": (
            lambda p: _legacy(p, _tensor(2**40, W_SHAPE, (512, 32, 1), legacy=True), bytes(64)),
            "declares 1,099,511,627,776 elements",
        ),
        "dict of colliding keys": (
            lambda p: _torch_zip(p, _colliding_dict(20_000), b""),
            "keyed by 230584300",
        ),
    }
    return {
        name: (make(tmp_path / f"hostile-{i}.pt"), message)
        for i, (name, (make, message)) in enumerate(makers.items())
        if names is None or name in names
    }


@pytest.mark.slow
def test_hostile_w_plus_files_are_one_input_error_quickly_in_bounded_memory(
    tmp_path: Path, guarded
) -> None:
    files = _hostile_files(tmp_path)
    setup = "from model.apps.photos import load_wplus"
    args = [str(path) for path, _ in files.values()]
    results, changed, _ = guarded(setup, f"load_wplus(arg, {W_SHAPE[1]}, {W_SHAPE[2]})", args)
    for (name, (path, message)), r in zip(files.items(), results, strict=True):
        assert r["error"] is not None and r["error"].startswith("InputError"), (name, r)
        assert str(path) in r["error"] and message in r["error"], (name, r["error"])
        assert "\n" not in r["error"], name
        assert r["seconds"] < 5 and r["grew"] < 100 << 20, (name, r)
    assert changed == []


@pytest.mark.slow
def test_a_hostile_state_pt_stops_a_resume_quickly_in_one_line(tmp_path: Path, guarded) -> None:
    """A run resumes from its newest checkpoint: a state.pt inflating or hash-flooding is refused
    (InputError: one line, exit 2) before it costs memory or time."""
    model = torch.nn.Linear(4, 3)
    rt = runtime.Runtime(device=torch.device("cpu"))
    hostile = _hostile_files(tmp_path, ["deflated record (zip bomb)", "dict of colliding keys"])
    runs = {}
    for name in hostile:
        run = tmp_path / f"run-{len(runs)}"
        folder = runtime.Checkpointer(run).save(1, {"net": model}, {}, None, rt)
        (folder / "state.pt").write_bytes(hostile[name][0].read_bytes())
        runs[str(run)] = (folder / "state.pt", hostile[name][1])
    setup = "import torch\nfrom model import runtime"
    call = 'runtime.Checkpointer(arg).load_latest({"net": torch.nn.Linear(4, 3)})'
    results, _, _ = guarded(setup, call, list(runs))
    for r in results:
        state, message = runs[r["arg"]]
        assert r["error"] is not None and r["error"].startswith("InputError"), r
        assert str(state) in r["error"] and message in r["error"], r["error"]
        assert r["seconds"] < 5 and r["grew"] < 100 << 20, r
