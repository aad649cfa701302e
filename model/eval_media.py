"""The videos `model.evaluate` scores, from any source, as one `Video` record.

A test clip of the corpus, an mp4 of a `--videos` folder (another model's output) and a video the
run renders in memory all become a `Video`: its frames at its own rate, resized once to the
evaluation's resolution (short side, area filter when shrinking, bilinear when enlarging; centre
crop), the AV-Align flow trajectory computed on the frames at their own size while they stream by,
and the onset times of its sound. Files are read with OpenCV (`cv2.VideoCapture`, the file's own
frame rate), as TempoTokens' `av_align.py` reads them; a corpus clip goes through a temporary file
the same way. A file's sound is the same-named `.wav` beside it (the TempoTokens convention) or else
its own audio track.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from model.data import expand_shards, prompt_for, shard_samples
from model.metrics.av_align import FlowTrajectory, audio_onsets, load_sound


@dataclass
class Video:
    key: str  # corpus key (or file-name stem)
    fps: float  # its own frame rate
    frames: np.ndarray  # uint8 [T, R, R, 3], R the evaluation's resolution
    flow: np.ndarray  # AV-Align flow trajectory [T] at the video's own size (empty: not computed)
    onsets: np.ndarray | None  # onset times (s) of its sound; None: it has none

    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def duration(self) -> float:
        return self.count / self.fps


def square(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [size, size, 3]: short side to `size`, centre crop."""
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        how = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (nw, nh), interpolation=how)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(frame[top : top + size, left : left + size])


def from_frames(
    key: str, frames: np.ndarray, fps: float, size: int, onsets: np.ndarray | None, flow: bool
) -> Video:
    """A `Video` of uint8 RGB frames [T, H, W, 3] at their own size."""
    traj = FlowTrajectory()
    if flow:
        for f in frames:
            traj.add(f)
    squared = np.stack([square(f, size) for f in frames])
    return Video(key, fps, squared, np.asarray(traj.values), onsets)


def read_video(
    path: Path, key: str, size: int, onsets: np.ndarray | None, flow: bool = True
) -> Video:
    """A video file read with OpenCV at its own rate; ValueError when it cannot be read."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError("OpenCV cannot open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        traj = FlowTrajectory()
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if flow:
                traj.add(rgb)
            frames.append(square(rgb, size))
    finally:
        cap.release()
    if not frames:
        raise ValueError("no frame decodes")
    if not fps > 0:
        raise ValueError(f"frame rate {fps:g}")
    return Video(key, fps, np.stack(frames), np.asarray(traj.values), onsets)


def sound_onsets(source: Path | bytes) -> np.ndarray:
    return audio_onsets(load_sound(source))


@dataclass
class Clip:
    """A test (or train) clip of the corpus."""

    key: str
    meta: dict
    mp4: bytes
    flac: bytes

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def prompt(self) -> str:
        return prompt_for(self.meta["class"])

    def video(self, size: int, flow: bool) -> Video:
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(self.mp4)
            f.flush()
            onsets = sound_onsets(self.flac) if flow else None
            return read_video(Path(f.name), self.key, size, onsets, flow)


def iter_clips(shards: str, limit: int) -> Iterator[Clip]:
    """The first `limit` clips of the shards, in sorted shard order and tar order."""
    n = 0
    for url in expand_shards(shards):
        for sample in shard_samples(url):
            if n >= limit:
                return
            yield Clip(sample["__key__"], json.loads(sample["json"]), sample["mp4"], sample["flac"])
            n += 1


@dataclass
class Folder:
    """The mp4s of a `--videos` folder matched against the test clips' keys."""

    path: Path
    files: dict[str, Path]  # stem -> mp4, in key order
    missing: list[str] = field(default_factory=list)  # test keys without a video
    extra: list[str] = field(default_factory=list)  # mp4 stems that are no evaluated test key

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)


def scan_folder(path: str | Path, keys: list[str] | None) -> Folder:
    """The folder's mp4s; with `keys` (the evaluated test clips), matched against them."""
    path = Path(path)
    found = {p.stem: p for p in sorted(path.glob("*.mp4"))}
    if keys is None:
        return Folder(path, found)
    return Folder(
        path,
        {k: found[k] for k in keys if k in found},
        [k for k in keys if k not in found],
        [s for s in found if s not in set(keys)],
    )


def file_sound(mp4: Path) -> Path | None:
    """The sound of a generated mp4: the same-named .wav beside it, else its own track (None when
    it has neither)."""
    wav = mp4.with_suffix(".wav")
    if wav.is_file():
        return wav
    from landscape_av.corpus.decode import open_media

    with open_media(mp4) as container:
        return mp4 if container.streams.audio else None


def export_sounds(shards: str, out: str | Path, limit: int) -> int:
    """Each test clip's sound as `KEY.wav` (16-bit PCM at its own rate and channels) and
    `prompts.csv` (key, class, prompt): what a peer model generates from. Returns the count."""
    import soundfile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in iter_clips(shards, limit):
        data, rate = soundfile.read(io.BytesIO(clip.flac), dtype="int16", always_2d=True)
        tmp = out / f".{clip.key}.wav.tmp"
        soundfile.write(tmp, data, rate, subtype="PCM_16", format="WAV")
        tmp.replace(out / f"{clip.key}.wav")
        rows.append((clip.key, clip.meta["class"], clip.prompt))
    with open(out / "prompts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("key", "class", "prompt"))
        writer.writerows(rows)
    return len(rows)
