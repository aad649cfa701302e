"""Run checkpoints (`model.runtime.Checkpointer`): interrupted saves and prunes leave nothing a
resumed run must step over, and weights are checked before they are loaded."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import runtime

RT = runtime.Runtime(device=torch.device("cpu"))


def _save(ckpt: runtime.Checkpointer, step: int, model: torch.nn.Module) -> Path:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return ckpt.save(step, {"net": model}, {"opt": opt}, None, RT, config={"step": step})


def test_resume_removes_what_a_killed_save_or_prune_left(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    ckpt = runtime.Checkpointer(tmp_path, keep=5)
    for step in (1, 2, 3):
        _save(ckpt, step, model)
    root = tmp_path / runtime.CHECKPOINT_DIR
    # What the earlier code left when killed: a prune that got through two files of three, one that
    # removed only the weights, and a save that never reached its rename.
    for name in ("model.safetensors", "state.pt"):
        (root / "step-00000001" / name).unlink()
    (root / "step-00000003" / "model.safetensors").unlink()
    (root / ".tmp-step-00000004").mkdir()
    (root / ".tmp-step-00000004" / "state.pt").write_bytes(b"half")
    (root / ".trash-step-00000000").mkdir()

    resumed = torch.nn.Linear(4, 3)
    state = runtime.Checkpointer(tmp_path).load_latest({"net": resumed})
    assert state["step"] == 2
    assert sorted(p.name for p in root.iterdir()) == ["step-00000002"]
    assert torch.equal(resumed.weight, model.weight)


CHILD = """
import sys, torch
from model import runtime
rt = runtime.Runtime(device=torch.device("cpu"))
model = torch.nn.Linear(512, 512)
ckpt = runtime.Checkpointer(sys.argv[1], keep=1)
state = ckpt.load_latest({"net": model})
step = 0 if state is None else state["step"]
opt = torch.optim.SGD(model.parameters(), lr=0.1)
while True:
    step += 1
    ckpt.save(step, {"net": model}, {"opt": opt}, None, rt, config={"step": step})
    print(step, flush=True)
"""


@pytest.mark.slow
def test_killed_while_saving_and_pruning_resumes_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "1"  # saving (and pruning) in a loop from here
        time.sleep(0.3)  # somewhere in a save or a prune
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    root = tmp_path / runtime.CHECKPOINT_DIR
    for folder in root.glob("step-*"):  # never a half-written or half-deleted checkpoint
        assert sorted(p.name for p in folder.iterdir()) == sorted(runtime.CHECKPOINT_FILES)
    model = torch.nn.Linear(512, 512)
    ckpt = runtime.Checkpointer(tmp_path, keep=1)
    state = ckpt.load_latest({"net": model})
    assert state is not None and not [p for p in root.iterdir() if not p.name.startswith("step-")]


def test_weights_of_another_dtype_or_nonfinite_are_refused(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    folder = _save(runtime.Checkpointer(tmp_path), 1, model)
    weights = load_file(str(folder / "model.safetensors"))
    for change, message in [
        (lambda w: w.double(), r"net\.weight is torch\.float64"),
        (lambda w: w.to(torch.int8), r"net\.weight is torch\.int8"),
        (lambda w: w.clone().fill_(float("inf")), r"net\.weight holds NaN or infinite"),
    ]:
        save_file(
            {**weights, "net.weight": change(weights["net.weight"])},
            str(folder / "model.safetensors"),
        )
        with pytest.raises(ValueError, match=message):
            runtime.load_weights(folder, {"net": torch.nn.Linear(4, 3)})
