"""`python -m model.evaluate` end to end on CPU: the offline demo corpus, a tiny untrained run, the
stand-in feature networks, and folders of made-up videos scored like another model's output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from model import runtime
from model.evaluate import METRICS, EvalConfig, evaluate
from model.metrics.networks import STANDIN_NOTE
from model.metrics.standins import write_standins
from model.train import Trainer, build_config, load_frozen

TIMEOUT = 900
FLAGS = ("--fps", "2", "--resolution", "32", "--device", "cpu", "--quiet")


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


def _evaluate(*flags: str, threads: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "model.evaluate", *FLAGS, *flags]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.mark.slow
def test_the_runs_rows_deterministic_at_one_and_two_threads_cached_and_marked(
    run_dir, full_demo_corpus, weights, tmp_path
):
    shards = str(full_demo_corpus / "data" / "test-*.tar")
    args = ("--checkpoint", str(run_dir), "--shards", shards, "--weights", str(weights))
    args += ("--num-videos", "3", "--baselines", "model")
    a = _evaluate(*args, "--out", str(tmp_path / "a"))
    assert a.returncode == 0, a.stderr[-3000:]
    text = (tmp_path / "a" / "metrics.json").read_text()
    result = json.loads(text)
    assert result["standin"] and result["warning"] == STANDIN_NOTE
    assert result["clips"] == 3 and result["skipped"] == []
    assert result["row_order"] == ["real", "model@walk", "model@render"]
    assert set(result["rows"]) == set(result["row_order"])
    render, real = result["rows"]["model@render"], result["rows"]["real"]
    for key in ("fvd2048_16f", "is_nvidia", "clip_text", "clip_audio", "av_align", "source_mse"):
        assert key in render, key
    assert math.isfinite(render["fvd2048_16f"]) and render["fvd2048_16f"] > 0
    assert math.isfinite(real["fvd2048_16f"]) and "asva_fvd" in real  # the floor: train vs test
    assert set(render["per_video"]) == set(real["per_video"]) and len(render["per_video"]) == 3
    for values in render["per_video"].values():
        assert 0 <= values["av_align"] <= 1 and values["source_lpips"] > 0
    # the walked latents (0.3 fps for the tiny run) are too few for a 16-frame window: counted
    assert "fvd2048_16f" not in result["rows"]["model@walk"]
    assert result["counts"]["model@walk"]["wrong_length"] == 3
    assert result["protocols"]["fvd2048_16f"]["standin"] is True
    assert result["protocols"]["asva_fvd"]["published"].startswith("AVSyncD")
    md = (tmp_path / "a" / "metrics.md").read_text()
    assert md.startswith(f"> **{STANDIN_NOTE}") and "[fvd2048_16f]" in md and "`asva_fvd`" in md
    assert "Published Landscape numbers" in md and "449.59" in md
    assert a.stdout.count(STANDIN_NOTE) == 2

    b = _evaluate(*args, "--out", str(tmp_path / "b"), threads=1)
    assert b.returncode == 0, b.stderr[-3000:]
    assert (tmp_path / "b" / "metrics.json").read_text() == text

    # a rerun generates and extracts nothing: the caches stay as they were
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "a" / "cache").glob("*.npz")}
    cfg = EvalConfig(
        checkpoint=str(run_dir), shards=shards, weights=str(weights), out=str(tmp_path / "a"),
        num_videos=3, rows=("model",), metrics=METRICS, fps=2, resolution=32, device="cpu",
        quiet=True,
    )  # fmt: skip
    assert json.loads(json.dumps(evaluate(cfg), sort_keys=True)) == {
        k: v for k, v in result.items() if k != "warning"
    }
    assert len(kept) == 4 and all(p.stat().st_mtime_ns == t for p, t in kept.items())


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "10"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


def _moving(times: np.ndarray, fps: int, seconds: float, seed: int) -> np.ndarray:
    """A smooth texture that jumps 2 px at each of `times`, still otherwise."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32) * 255, (0, 0), 3)
    hits = {round(t * fps) for t in times}
    frames, shift = [], 0.0
    for k in range(round(seconds * fps)):
        shift += 2.0 if k in hits else 0.0
        m = np.float32([[1, 0, shift % 16], [0, 1, 0]])
        img = cv2.warpAffine(base, m, (64, 64), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.repeat(img.astype(np.uint8)[..., None], 3, -1))
    return np.stack(frames)


def reference_av_align(mp4: Path, wav: Path) -> float:
    """TempoTokens' av_align.py (2025) on one video and its wav, transcribed independently."""
    import librosa

    cap = cv2.VideoCapture(str(mp4))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cap.release()

    def flow(a, b):
        f = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return cv2.mean(cv2.magnitude(f[..., 0], f[..., 1]))[0]

    traj = [flow(frames[0], frames[1])] + [
        flow(frames[i - 1], frames[i]) for i in range(1, len(frames))
    ]
    video = [
        i / fps
        for i in range(1, len(traj) - 1)
        if traj[i - 1] < traj[i] > traj[i + 1] and traj[i] >= 0.1
    ]
    y, sr = librosa.load(str(wav))
    env = librosa.onset.onset_strength(y=y, sr=sr)
    audio = librosa.frames_to_time(librosa.onset.onset_detect(onset_envelope=env, sr=sr), sr=sr)
    hits, used = 0, [False] * len(video)
    for a in audio:
        for j, v in enumerate(video):
            if not used[j] and v - 1 / fps < a < v + 1 / fps:
                hits, used[j] = hits + 1, True
                break
    return hits / (len(audio) + len(video) - hits)


@pytest.mark.slow
def test_a_folder_of_another_models_videos(full_demo_corpus, weights, tmp_path):
    """Exported sounds; made-up videos moving on their sounds' onsets (or not), one missing, one
    unreadable, one extra: per-video AV-Align as the reference code gives it, problems counted."""
    import librosa

    shards = str(full_demo_corpus / "data" / "test-*.tar")
    sounds = tmp_path / "sounds"
    proc = subprocess.run(
        [sys.executable, "-m", "model.export_sounds", "--shards", shards, "--out", str(sounds),
         "--num-videos", "4"], capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = [line.split(",")[0] for line in (sounds / "prompts.csv").read_text().splitlines()[1:]]
    assert len(keys) == 4 and all((sounds / f"{k}.wav").is_file() for k in keys)
    videos = tmp_path / "other-model"
    videos.mkdir()
    for i, key in enumerate(keys[:2]):  # on the onsets, and on made-up times
        wav = sounds / f"{key}.wav"
        y, sr = librosa.load(str(wav))
        onsets = librosa.onset.onset_detect(y=y, sr=sr, units="time")
        times = onsets if i == 0 else np.arange(0.7, 10, 1.3)
        _write_mp4(videos / f"{key}.mp4", _moving(times, 8, 10, i), 8)
        (videos / f"{key}.wav").write_bytes(wav.read_bytes())
    (videos / f"{keys[2]}.mp4").write_bytes(b"not a video")  # unreadable; keys[3] is missing
    _write_mp4(videos / "not-a-test-clip.mp4", _moving(np.array([1.0]), 8, 3, 5), 8)

    proc = _evaluate(
        "--shards", shards, "--videos", str(videos), "--weights", str(weights), "--num-videos", "4",
        "--metrics", "av_align,fvd,is_frame", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    row = result["rows"]["videos:other-model"]
    assert row["videos"] == 2 and set(row["per_video"]) == set(keys[:2])
    for key in keys[:2]:
        want = reference_av_align(videos / f"{key}.mp4", videos / f"{key}.wav")
        assert row["per_video"][key]["av_align"] == pytest.approx(want, abs=0.02), key
    assert row["per_video"][keys[0]]["av_align"] > row["per_video"][keys[1]]["av_align"]
    assert result["counts"]["videos:other-model"] == {"missing": 1, "extra": 1, "unreadable": 1}
    lines = result["problems"]["videos:other-model"]
    assert keys[3] in lines["missing"][0] and f"{keys[2]}.mp4: unreadable" in lines["unreadable"][0]
    assert "not-a-test-clip.mp4: extra" in lines["extra"][0]
    assert "fvd2048_16f" in row and "videos:other-model: 1 missing" in proc.stdout

    # without the test clips: what needs no real clip, for videos of any name
    proc = _evaluate(
        "--videos", str(videos), "--weights", str(weights), "--metrics", "av_align,is_frame",
        "--out", str(tmp_path / "alone"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert set(alone["rows"]["videos:other-model"]["per_video"]) == set(keys[:2])
    assert alone["rows"]["videos:other-model"]["is_nvidia"]["videos"] == 3
    assert alone["counts"]["videos:other-model"] == {"unreadable": 1, "no_sound": 1}


def test_cli_refuses_what_cannot_be_measured(tmp_path):
    base = [sys.executable, "-m", "model.evaluate", "--shards", str(tmp_path / "test-*.tar")]
    proc = subprocess.run(
        [*base, "--metrics", "fvd,bogus"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "bogus: choose from " + ",".join(METRICS) in proc.stderr
    proc = subprocess.run([*base, "--frames", "8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--frames 8: must be at least 9 (the I3D" in proc.stderr
    proc = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no shard matches" in proc.stderr
    proc = subprocess.run(base[:3], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "give --shards" in proc.stderr
