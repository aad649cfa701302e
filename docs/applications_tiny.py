"""Make docs/applications-tiny.png: the README's application commands (model.invert, model.edit,
model.generate), run on an untrained `model.train --tiny` checkpoint, in one labelled picture.

    python docs/applications_tiny.py [--media ../shared/media] [--work DIR]

Top: the photo (centre-cropped, as the generator sees it), its inversion, the inversion edited with
a thunderstorm sound at the fine levels. Below: frames 0, 2, ..., 10 of the photo's latent walked by
the same sound. Each 16 px panel is enlarged nearest-neighbour to 256 px (`model.pictures`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image

from model import runtime
from model.apps.photos import load_image
from model.pictures import read_panel, save_panels, uint8_images
from model.train import Trainer, build_config, load_frozen

REPO = Path(__file__).resolve().parents[1]
PHOTO = "video_nature__mdn-interactive-examples__flower.mp4"
SOUND = "thunderstorm__redeclipse-sounds__morph-stormrain.ogg"
SIZE = 16  # the tiny generator's resolution


def model_command(name: str, *args: str) -> None:
    cmd = [sys.executable, "-m", f"model.{name}", *args, "--device", "cpu", "--quiet"]
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    ap.add_argument("--work", type=Path, default=None, help="[a temporary folder]")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "applications-tiny.png")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="applications-tiny-"))
    run = work / "run"  # an untrained tiny run, as tests/model/conftest.py makes it
    cfg = build_config(["--tiny", "--shards", "unused.tar", "--out", str(run)])
    rt = runtime.setup("cpu", seed=0)
    Trainer(cfg, rt, load_frozen(cfg, rt.device)).save(runtime.Checkpointer(run), 0)
    photo, sound = work / "flower.jpg", args.media / SOUND
    with av.open(str(args.media / PHOTO)) as c:
        next(c.decode(video=0)).to_image().save(photo, quality=95)

    w = work / "flower.wplus.pt"
    model_command("invert", "--checkpoint", str(run), "--image", str(photo), "--out", str(w),
                  "--steps", "100")  # fmt: skip
    model_command("edit", "--checkpoint", str(run), "--image", str(w), "--audio", str(sound),
                  "--levels", "fine", "--steps", "100", "--out", str(work / "edited.png"))  # fmt: skip
    model_command("generate", "--checkpoint", str(run), "--image", str(w), "--audio", str(sound),
                  "--fps", "2", "--out", str(work / "flower.mp4"))  # fmt: skip

    def panel(png: Path, index: int) -> np.ndarray:
        with Image.open(png) as im:
            return read_panel(np.asarray(im.convert("RGB")), index, SIZE)

    panels = [
        ("photo (cropped)", uint8_images(load_image(photo, SIZE)[0])[0]),
        ("inversion", panel(w.with_suffix(".png"), 1)),
        ("edited: storm, fine", panel(work / "edited.png", 1)),
    ]
    with av.open(str(work / "flower.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    panels += [(f"video frame {t}", frames[t]) for t in range(0, 12, 2)]
    print(save_panels(args.out, panels, columns=3))


if __name__ == "__main__":
    main()
