"""Every model command answers a bad input file with one line naming it and exit 2 (issue 10),
before any heavy work; `--debug` shows the traceback instead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 120


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"model.{module}", *args, "--device", "cpu", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)


def _text(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("not media, not a run\n")
    return path


CASES = {
    # (command, bad input) -> (arguments, the file the line must name); {run} is a valid run
    ("generate", "missing"): (["--checkpoint", "{run}", "--audio", "{tmp}/gone.wav"], "gone.wav"),
    ("generate", "not audio"): (["--checkpoint", "{run}", "--audio", "{tmp}/notes.txt"], "notes.txt"),
    ("generate", "not a run"): (["--checkpoint", "{tmp}/notes.txt", "--audio", "{tmp}/notes.txt"], "notes.txt"),
    ("train", "missing"): (["--tiny", "--shards", "{tmp}/gone.tar", "--out", "{tmp}/o"], "gone.tar"),
    ("train", "not audio"): (["--tiny", "--shards", "{tmp}/notes.tar", "--out", "{tmp}/o"], "notes.tar"),
    ("train", "not a run"): (["--tiny", "--shards", "{tmp}/notes.tar", "--generator", "{tmp}/gone.pkl"], "gone.pkl"),
    ("evaluate", "missing"): (["--checkpoint", "{tmp}/gone", "--shards", "x.tar"], "gone"),
    ("evaluate", "not audio"): (["--checkpoint", "{run}", "--shards", "{tmp}/notes.tar"], "notes.tar"),
    ("evaluate", "not a run"): (["--checkpoint", "{tmp}", "--shards", "{tmp}/notes.tar"], "{tmp}"),
}  # fmt: skip


FAST_CASE = ("generate", "missing")
"""The one case of the fast subset (`-m "not slow"`): each case runs a CLI (and imports torch)."""


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=() if c == FAST_CASE else pytest.mark.slow) for c in CASES],
    ids=lambda c: f"{c[0]}-{c[1].replace(' ', '-')}",
)
def test_bad_input_is_one_line_naming_the_file_and_exit_2(case, run_dir, tmp_path):
    _text(tmp_path, "notes.txt")
    _text(tmp_path, "notes.tar")
    args, named = CASES[case]
    fill = lambda s: s.format(run=run_dir, tmp=tmp_path)  # noqa: E731
    proc = _cli(case[0], *map(fill, args))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert fill(named) in lines[0]


@pytest.mark.slow
def test_debug_shows_the_traceback(run_dir, tmp_path):
    notes = _text(tmp_path, "notes.txt")
    proc = _cli("generate", "--checkpoint", str(run_dir), "--audio", str(notes), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "notes.txt" in proc.stderr


EARLY = {
    # command -> arguments naming a path that is not there (the first that early_check looks at)
    "generate": ["--checkpoint", "{tmp}/nope", "--audio", "{tmp}/gone.wav"],
    "invert": ["--checkpoint", "{tmp}/nope", "--image", "{tmp}/gone.jpg", "--out", "{tmp}/w.pt"],
    "edit": ["--checkpoint", "{tmp}/nope", "--image", "{tmp}/gone.jpg", "--out", "{tmp}/e.png"],
    "train": ["--tiny", "--shards", "{tmp}/nope/train-*.tar", "--out", "{tmp}/run"],
    "train_audio": ["--tiny", "--shards", "{tmp}/nope/train-{{000000..000002}}.tar"],
    "evaluate": ["--checkpoint", "{tmp}/nope", "--shards", "{tmp}/nope/test-*.tar"],
    "prepare": ["--shards", "{tmp}/nope/train-*.tar", "--out", "{tmp}/prepared"],
}


def _seconds(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    return time.monotonic() - began, proc


@pytest.mark.parametrize("command", list(EARLY))
def test_a_missing_path_is_answered_before_the_heavy_imports(command: str, tmp_path: Path):
    """`python -m model.<command>` naming a path that is not there answers with one line and exit 2
    without importing torch (30-70 s on a loaded machine): within 10 times the start of a bare
    `python -c pass` measured here, not after the imports."""
    args = [a.format(tmp=tmp_path) for a in EARLY[command]]
    pass_s = sorted(_seconds([sys.executable, "-c", "pass"])[0] for _ in range(3))[1]
    took, proc = _seconds([sys.executable, "-X", "importtime", "-m", f"model.{command}", *args])
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("Error: ") and "nope" in errors[0]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "numpy", "av", "torchvision"}, sorted(imported)
    assert took < 10 * pass_s, f"{took:.2f} s; python -c pass: {pass_s:.2f} s"


@pytest.mark.slow
def test_train_refuses_its_shards_before_naming_the_run(tmp_path):
    """Shards that cannot be read are refused before the run folder is named new or resumed."""
    _text(tmp_path, "notes.tar")
    proc = _cli(
        "train", "--tiny", "--shards", str(tmp_path / "notes.tar"), "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 2 and "notes.tar" in proc.stderr, proc.stderr
    assert "new run" not in proc.stdout + proc.stderr and "resuming" not in proc.stdout
