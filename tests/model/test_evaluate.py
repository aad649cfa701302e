"""`python -m model.evaluate` end to end on CPU: the offline demo corpus, a tiny untrained run and
the stand-in feature networks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model import runtime
from model.evaluate import METRICS, ROWS, EvalConfig, evaluate
from model.metrics.standins import write_standins
from model.train import Trainer, build_config, load_frozen

TIMEOUT = 900
FLAGS = ("--num-videos", "4", "--fps", "2", "--device", "cpu", "--quiet")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny untrained run (step 0 checkpoint)."""
    run = tmp_path_factory.mktemp("eval") / "run"
    cfg = build_config(["--tiny", "--shards", "unused.tar", "--out", str(run)])
    rt = runtime.setup("cpu", seed=0)
    Trainer(cfg, rt, load_frozen(cfg, rt.device)).save(runtime.Checkpointer(run), 0)
    return run


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_standins(tmp_path_factory.mktemp("weights"))


def _evaluate(run: Path, corpus: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "model.evaluate", "--checkpoint", str(run)]
    cmd += ["--shards", str(corpus / "data" / "test-*.tar"), "--out", str(out), *FLAGS, *flags]
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.mark.slow
def test_every_metric_and_baseline_deterministic_and_cached(
    run_dir, full_demo_corpus, weights, tmp_path
):
    a = _evaluate(run_dir, full_demo_corpus, tmp_path / "a", "--weights", str(weights))
    assert a.returncode == 0, a.stderr[-3000:]
    result = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert result["videos"] == 4 and result["skipped"] == []
    assert set(result["rows"]) == set(ROWS)
    keys = {"fvd", "is_frame", "is_video", "clip_text", "clip_audio", "av_align"}
    for row, values in result["rows"].items():
        want = keys if row == "real" else keys | {"mse", "lpips"}
        assert set(values) == want, row
        flat = [v["mean"] if isinstance(v, dict) else v for v in values.values()]
        assert all(math.isfinite(v) for v in flat), (row, values)
    assert result["rows"]["model"]["fvd"] > 0 and result["rows"]["model"]["mse"] > 0
    md = (tmp_path / "a" / "metrics.md").read_text()
    for text in ("Table 2", "Table 3a", "Table 3b", "w/o sound", "W+ linear interpolation"):
        assert text in md
    assert "4 videos (fewer than StyleGAN-V's 2048)" in md and "i3d_torchscript.pt" in md

    b = _evaluate(run_dir, full_demo_corpus, tmp_path / "b", "--weights", str(weights))
    assert b.returncode == 0, b.stderr[-3000:]
    assert (tmp_path / "b" / "metrics.json").read_text() == json.dumps(
        result, indent=2, sort_keys=True
    ) + "\n"

    # a rerun generates and extracts nothing: videos and caches stay as they were
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "a" / "cache").glob("*.npz")}
    cfg = EvalConfig(
        checkpoint=str(run_dir),
        shards=str(full_demo_corpus / "data" / "test-*.tar"),
        weights=str(weights),
        out=str(tmp_path / "a"),
        num_videos=4,
        fps=2,
        device="cpu",
        quiet=True,
    )
    assert evaluate(cfg) == result
    assert len(kept) == 5 and all(p.stat().st_mtime_ns == t for p, t in kept.items())


@pytest.mark.slow
def test_missing_weights_are_one_line_each_and_the_rest_runs(run_dir, full_demo_corpus, tmp_path):
    empty = tmp_path / "weights"
    empty.mkdir()
    proc = _evaluate(
        run_dir, full_demo_corpus, tmp_path / "out", "--weights", str(empty),
        "--metrics", "fvd,is_video,av_align", "--baselines", "real",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "no such file" in line]
    assert len(lines) == 2
    assert "i3d_torchscript.pt" in lines[0] and lines[0].endswith("skipping fvd")
    assert "c3d_ucf101.pt" in lines[1] and lines[1].endswith("skipping is_video")
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(result["rows"]) == ["real"] and set(result["rows"]["real"]) == {"av_align"}


@pytest.mark.slow
def test_cli_rejects_shards_that_match_nothing(tmp_path):
    cmd = [sys.executable, "-m", "model.evaluate", "--checkpoint", str(tmp_path)]
    cmd += ["--shards", str(tmp_path / "test-*.tar"), "--metrics", "fvd,bogus"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bogus: choose from " + ",".join(METRICS) in proc.stderr
    cmd[-2:] = ["--metrics", "fvd"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no shard matches" in proc.stderr
