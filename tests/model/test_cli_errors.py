"""Every model command answers a bad input file with one line naming it and exit 2 (issue 10),
before any heavy work; `--debug` shows the traceback instead."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from model import runtime

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


# ----------------------------------------------------------------------------------------------
# Checkpoint folders anyone may have made: config.json and the weights are checked before anything
# is built from them (issue 22)

GENERATE = """
import contextlib, io
import model.apps.edits, model.apps.guidance, model.stylegan3, model.train  # what generate imports as it runs
from model.generate import main
def generate(folder):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--checkpoint", folder, "--audio", {audio!r}, "--out", {out!r},
                     "--device", "cpu", "--quiet"])
    return code, err.getvalue()
"""


def _nan_weights(path: Path) -> None:
    tensors = load_file(path)
    name = next(k for k, v in tensors.items() if k.startswith("latents.") and v.numel() > 1)
    tensors[name][0] = float("nan")
    save_file(tensors, path)


CHECKPOINTS = {
    # name -> (what it changes in a copy of a valid checkpoint, the file and words the line names)
    "unknown generator kwarg": (lambda c: c["generator_kwargs"].update(evil=1), "config.json", "unknown generator config field evil"),
    "a list, not an object": ("[]", "config.json", "a list, not a JSON object"),
    "invalid JSON": ('{"model": ', "config.json", "not valid JSON"),
    "deep JSON": ('{"extra": ' + "[" * 100_000 + "]" * 100_000 + "}", "config.json", "nested"),
    "a 400-digit integer": (lambda c: c.update(n_mels=10**400), "config.json", "n_mels=<an integer of about 401 digits>"),
    "a negative resolution": (lambda c: c["generator_kwargs"].update(img_resolution=-256), "config.json", "img_resolution=-256 is outside"),
    "NaN": (lambda c: c["model"].update(truncation=float("nan")), "config.json", "NaN is not a JSON number"),
    "a 13 TB walker": (lambda c: c["model"]["walker"].update(hidden=10**6), "config.json", "walker.hidden=1000000 is outside"),
    "a 154 GB encoder": (lambda c: c["model"]["encoder"].update(width=10**4), "config.json", "encoder.width=10000 is outside"),
    "a 9.6 GB generator": (lambda c: c["generator_kwargs"].update(channel_max=2**16), "config.json", "channel_max=65536 is outside"),
    "every bound met, too large in all": (lambda c: c["model"]["encoder"].update(width=256, depth=[32] * 4), "config.json", "parameters (more than"),
    "a generator of other ws": (lambda c: c["generator_kwargs"].update(num_layers=13), "config.json", "differ from the generator's 15"),
    "float64 weights": (lambda p: save_file({k: v.double() for k, v in load_file(p).items()}, p), "model.safetensors", "is torch.float64"),
    "NaN weights": (_nan_weights, "model.safetensors", "holds NaN"),
    "truncated weights": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "model.safetensors", "not a readable safetensors"),
}  # fmt: skip


def _made_up_checkpoint(source: Path, folder: Path, file: str, change) -> Path:
    """A copy of the checkpoint folder `source` whose config.json is the text `change`, or is
    changed by `change(values)`; or whose weights file `change(path)` changes."""
    shutil.copytree(source, folder)
    path = folder / file
    if isinstance(change, str):
        path.write_text(change)
    elif file == "config.json":
        values = json.loads(path.read_text())
        change(values)
        path.write_text(json.dumps(values))
    else:
        change(path)
    return folder


@pytest.mark.slow
def test_made_up_checkpoint_folders_are_one_line_and_exit_2(run_dir, tmp_path, guarded) -> None:
    source = runtime.Checkpointer(run_dir).latest()
    folders = {
        str(_made_up_checkpoint(source, tmp_path / f"ckpt-{i}", file, change)): (name, file, words)
        for i, (name, (change, file, words)) in enumerate(CHECKPOINTS.items())
    }
    audio, out = _text(tmp_path, "notes.wav"), tmp_path / "out" / "video.mp4"
    before = sorted(tmp_path.rglob("*"))
    setup = GENERATE.format(audio=str(audio), out=str(out))
    results, _, _ = guarded(setup, "generate(arg)", list(folders))
    for r in results:
        name, file, words = folders[r["arg"]]
        assert r["error"] is None, (name, r["error"])
        code, stderr = ast.literal_eval(r["value"])
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, stderr)
        assert lines[0].startswith("Error: ") and f"{r['arg']}/{file}" in lines[0], (name, lines)
        assert words in lines[0], (name, lines[0])
        assert r["seconds"] < 5 and r["grew"] < 500 << 20, (name, r)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
