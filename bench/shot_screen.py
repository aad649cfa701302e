"""What `--shots`' screen (`--shot-screen`) saves and what it loses: TransNetV2 reading every window
against TransNetV2 reading only the windows where more of the picture changes than usually does,
on real shots and on transitions made between them.

Transitions: four pairs of real shots of ../shared/media (the flower into its own mirror image,
whose colours do not change; the cockatoo into Big Buck Bunny; the water stream into the flower
and back), each joined by a hard cut and by ffmpeg `xfade` transitions (dissolves of 0.5, 1 and
2 s, a 1 s fade through black, a 1 s wipe), 30 fps, 48x27 as the build's tap gives them. Shots:
every video of ../shared/media as it is (Big Buck Bunny's first 30 s hold four transitions of its
own), and the two generated pictures of bench/build_throughput.py (30 s each: the moving test
pattern and the steady gradients).

For each: the transitions found reading every window, those found through the screen, the windows
read, and the largest unusual change (`shots.unusual_change`: the share of the picture changing
over half a second, less its median over the 8 s around). Then the least unusual change of a
window that holds a transition found reading every window, against the largest of a shot
without one (of the videos and pictures as they are): the room the default screen sits in.
First it prints what one window costs TransNetV2 (`torch.utils.flop_counter`, and CPU seconds on
one thread), the work the screen saves; then what `--shots` pays however few windows it reads:
once per build, importing torch and loading TransNetV2, and per source, the screen itself.

    python bench/shot_screen.py                 # the default screen, 0.2
    python bench/shot_screen.py --screen 0.1 --json results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from build_throughput import PICTURES  # bench/ is the script's folder
from torch.utils.flop_counter import FlopCounterMode

from landscape_av.curation.models import shot_model
from landscape_av.curation.shots import (
    MARGIN,
    STEP,
    WINDOW,
    predict,
    transitions,
    unusual_change,
)
from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.curate import CurateOptions, one_thread

EACH = "fps=30,scale=48:27,setsar=1,format=rgb24,setpts=PTS-STARTPTS"
SHOTS = {  # name: (file, filter before EACH, start s)
    "flower": ("video_nature__mdn-interactive-examples__flower.mp4", "", 0),
    "mirror": ("video_nature__mdn-interactive-examples__flower.mp4", "hflip,", 0),
    "cockatoo": ("video_odd__imageio-binaries__cockatoo_yuv420.mp4", "", 0),
    "bunny": ("video_landscape-animated__moviepy__big_buck_bunny_0_30.webm", "", 17),
    "stream": ("video_waterfall__mdn-interactive-examples__stream-of-water.mp4", "", 0),
}
PAIRS = [("flower", "mirror"), ("cockatoo", "bunny"), ("stream", "flower"), ("flower", "stream")]
JOINS = [("cut", 0.0), ("fade", 0.5), ("fade", 1.0), ("fade", 2.0), ("fadeblack", 1.0)]
JOINS += [("wipeleft", 1.0)]
IMPORT_TORCH = "import resource, torch; u = resource.getrusage(0); print(u.ru_utime + u.ru_stime)"
LAG, AROUND = 15, 120  # half a second and 4 s at 30 fps, as the build takes them


def rgb(args: list[str]) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", *args], capture_output=True, check=True)
    return np.frombuffer(raw.stdout, np.uint8).reshape(-1, 27, 48, 3).copy()


def joined(media: Path, a: str, b: str, how: str, seconds: float) -> np.ndarray:
    """Shot `a` (2 to 3 s) into shot `b` by `how`, 150 frames."""
    (fa, pa, sa), (fb, pb, sb) = SHOTS[a], SHOTS[b]
    graph = f"[0:v]{pa}{EACH}[a];[1:v]{pb}{EACH}[b];"
    if how == "cut":
        graph += "[a]trim=end_frame=90[a2];[a2][b]concat=n=2:v=1:a=0"
    else:
        graph += f"[a][b]xfade=transition={how}:duration={seconds}:offset=2"
    inputs = ["-ss", str(sa), "-t", "4", "-i", str(media / fa), "-ss", str(sb), "-t", "3"]
    inputs += ["-i", str(media / fb), "-filter_complex", graph, "-frames:v", "150"]
    return rgb([*inputs, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--media", type=Path, default=repo.parent / "shared" / "media")
    ap.add_argument("--screen", type=float, default=CurateOptions().shot_screen)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    cases: dict[str, np.ndarray] = {}
    for a, b in PAIRS:
        for how, seconds in JOINS:
            cases[f"{a} -> {b}: {how} {seconds:g} s"] = joined(args.media, a, b, how, seconds)
    made = set(cases)  # the transitions made here; the rest are shots as they are
    for video in sorted(args.media.glob("video_*")):
        cases[video.name] = rgb(["-i", str(video), "-vf", "fps=30,scale=48:27", "-f", "rawvideo",
                                 "-pix_fmt", "rgb24", "-"])  # fmt: skip
    for picture, graph in PICTURES.items():
        source = graph.format(size="1280x720", i=0)
        cases[f"build_throughput.py's {picture} picture"] = rgb(
            ["-f", "lavfi", "-i", source, "-t", "30", "-vf", "scale=48:27", "-f", "rawvideo",
             "-pix_fmt", "rgb24", "-"]
        )  # fmt: skip
    importing = subprocess.run(
        [sys.executable, "-c", IMPORT_TORCH], capture_output=True, text=True, check=True
    )
    started = time.process_time()
    net = shot_model()
    loading = time.process_time() - started
    window = torch.zeros(1, WINDOW, 27, 48, 3, dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        net(window)
    flops = counter.get_total_flops()
    with one_thread():
        started = time.process_time()
        net(window)
        per_window = time.process_time() - started
    moving = cases["build_throughput.py's moving picture"]
    started = time.process_time()
    unusual_change(moving, LAG, AROUND)
    screening = time.process_time() - started
    print(f"TransNetV2: {flops / 1e9:.1f} GFLOP per window of {WINDOW} frames ({STEP} predicted), "
          f"{flops / STEP * 30 / 1e9:.1f} GFLOP per second of 30 fps video; "
          f"{per_window:.2f} CPU-s per window on one thread")  # fmt: skip
    print(f"once per build: a fresh Python importing torch {float(importing.stdout):.2f} CPU-s, "
          f"loading TransNetV2 {loading:.2f}; the screen: {screening:.3f} CPU-s per "
          f"{len(moving) / 30:g} s of 30 fps video")  # fmt: skip
    results = {}
    lost = found_all = read_sum = total_sum = 0
    dimmest, busiest = 1.0, -1.0  # unusual change: least with a transition, most in a shot
    print(f"screen {args.screen:g}: change over {LAG} frames, usual over {AROUND} either side")
    print(f"{'case':<62} {'every window':<22} {'screened':<22} {'read':>7} {'unusual':>7}")
    with one_thread():
        for name, frames in cases.items():
            every, _, total = predict(net, frames)
            screened, read, _ = predict(net, frames, args.screen, LAG)
            full = [(t.first, t.last) for t in transitions(every)]
            kept = [(t.first, t.last) for t in transitions(screened)]
            unusual = unusual_change(frames, LAG, AROUND)
            change = float(unusual.max())
            for start in range(0, len(every), STEP):  # window `start` predicts these frames
                span = unusual[max(0, start - MARGIN) : start - MARGIN + WINDOW].max()
                if (every[start : start + STEP] > 0.5).any():
                    dimmest = min(dimmest, float(span))
            if not full and name not in made:
                busiest = max(busiest, change)
            lost += len(set(full) - set(kept))
            found_all += len(full)
            read_sum, total_sum = read_sum + read, total_sum + total
            results[name] = {"every": full, "screened": kept, "read": read, "windows": total}
            results[name]["unusual"] = change
            print(f"{name[:62]:<62} {str(full):<22} {str(kept):<22} {read:>3}/{total:<3} "
                  f"{change:>7.3f}")  # fmt: skip
    print(
        f"transitions found reading every window: {found_all}; lost by the screen: {lost}; "
        f"windows read: {read_sum} of {total_sum}"
    )
    print(
        f"unusual change: least in a window with a transition {dimmest:.3f}, "
        f"largest in a shot without one {busiest:.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
