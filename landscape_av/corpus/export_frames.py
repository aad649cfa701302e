"""Frames of the corpus as an image dataset for pre-training StyleGAN3 on it.

The layout is the one NVIDIA's StyleGAN3 `dataset_tool.py` writes and its `ImageFolderDataset`
reads (a folder or an uncompressed zip): `00000/img00000000.png`, `00000/img00000001.png`, ...
(1000 images per sub-folder, named by the 8-digit image index, the folder by its first 5 digits)
and `dataset.json` = `{"labels": [["00000/img00000000.png", label], ...]}` with the class index as
the label. Images are square RGB PNGs with a power-of-two side, as StyleGAN3 requires, made as its
`--transform=center-crop` does (centred square crop, Lanczos resize).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from landscape_av.corpus.corpus import Corpus
from landscape_av.corpus.decode import pick_frames
from landscape_av.files import atomic_path
from landscape_av.schema import SPLITS


@dataclass(frozen=True)
class ExportOptions:
    resolution: int = 256  # side of the square output, a power of two
    frames_per_clip: int = 4  # evenly spaced over the clip, at (i + 0.5) / n of its frames
    split: str = "train"
    max_images: int | None = None

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"resolution {r} must be a power of two (StyleGAN3 needs it)")
        if self.frames_per_clip < 1:
            raise ValueError("frames_per_clip must be at least 1")
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r}; expected one of {', '.join(SPLITS)}")


def image_name(index: int) -> str:
    """`dataset_tool`'s archive name of the index-th image: `00000/img00000000.png`."""
    digits = f"{index:08d}"
    return f"{digits[:5]}/img{digits}.png"


def center_crop(frame: Image.Image, resolution: int) -> Image.Image:
    """`dataset_tool --transform=center-crop`: the centred square of the short side, Lanczos-resized."""
    w, h = frame.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    return frame.convert("RGB").crop(box).resize((resolution, resolution), Image.LANCZOS)


class _Writer:
    """Writes images + dataset.json into a folder, or into a zip when `dest` ends in .zip (moved
    into place when `stack` closes without an exception, removed otherwise)."""

    def __init__(self, dest: Path, stack: ExitStack) -> None:
        self.dest = dest
        self.zip = None
        if dest.suffix.lower() == ".zip":
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(dest))
            self.zip = stack.enter_context(
                zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED)
            )
        else:
            if dest.is_dir() and any(dest.iterdir()):
                raise ValueError(f"{dest} is not empty: give a new folder or a .zip path")
            dest.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        if self.zip is not None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible zips
            self.zip.writestr(info, data)
        else:
            path = self.dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def export_frames(
    folder: Corpus | Path,
    dest: Path,
    opts: ExportOptions | None = None,
    on_image: Callable[[int], None] | None = None,
) -> int:
    """Write frames of `folder`'s `opts.split` to `dest` (folder or .zip); return the image count.

    `on_image(count)` is called after each image (for a progress bar)."""
    opts = opts or ExportOptions()
    corpus = Corpus.of(folder)
    labels: list[list] = []
    with ExitStack() as stack:
        writer = _Writer(Path(dest), stack)
        for sample in corpus.samples(opts.split, members=("json", "mp4")):
            if len(sample.members) < 2:  # a damaged sample: `verify` names it
                continue
            meta = sample.meta()
            frames = pick_frames(
                sample.members["mp4"], int(meta["num_frames"]), opts.frames_per_clip
            )
            for frame in frames:
                if opts.max_images is not None and len(labels) >= opts.max_images:
                    break
                buf = io.BytesIO()
                center_crop(frame.to_image(), opts.resolution).save(
                    buf, format="png", compress_level=0
                )
                name = image_name(len(labels))
                writer.write(name, buf.getvalue())
                labels.append([name, int(meta["label"])])
                if on_image:
                    on_image(len(labels))
            if opts.max_images is not None and len(labels) >= opts.max_images:
                break
        if not labels:
            raise ValueError(f"no {opts.split} samples in {corpus.data_dir}")
        writer.write("dataset.json", json.dumps({"labels": labels}).encode())
    return len(labels)
