"""Every model command answers a bad input file with one line naming it and exit 2 (issue 10),
before any heavy work; `--debug` shows the traceback instead."""

from __future__ import annotations

import subprocess
import sys
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
    ("train", "not a run"): (["--tiny", "--shards", "x.tar", "--generator", "{tmp}/gone.pkl"], "gone.pkl"),
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
