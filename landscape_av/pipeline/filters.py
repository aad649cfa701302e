"""Stage 3: keep a source only if it is big enough, has sound, is long enough, is not silent and
is not a still picture. Every rejection carries exactly one reason from `schema.REJECT_REASONS`.

`check` judges a source before it is clipped: the probed facts, then the audio level of the span
that would be cut into clips (an audio decode: cheap). Motion needs the video decoded, which the
clip stage does anyway: it measures every frame of every clip, and `check_motion` judges the source
on that, so no check decodes the video a second time (bench/README.md says what that saves).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from landscape_av.corpus.decode import float_pcm, open_media
from landscape_av.pipeline.probe import Probe
from landscape_av.pipeline.settings import setting, size_setting

MOTION_SIZE = (64, 36)
"""Frames are compared as grey images of this size (width, height)."""


@dataclass(frozen=True)
class FilterOptions:
    """The filter's thresholds (`THRESHOLDS` names the one behind each rejection reason); the
    shortest source kept is one clip long (`check`'s `clip_seconds`)."""

    min_width: int = size_setting(
        1280, "min_height", "--min-size", help="Reject sources smaller than this."
    )
    min_height: int = 720
    silence_db: float = setting(-60.0, help="Reject sources whose RMS level is below this (dBFS).")
    frozen_floor: float = setting(
        0.001, low=0, help="Reject sources whose mean frame difference (0..1) is below this."
    )


THRESHOLDS: dict[str, tuple[str, ...]] = {
    "no_video": (),
    "low_resolution": ("min_width", "min_height"),
    "no_audio": (),
    "too_short": ("clip_seconds",),
    "silent": ("silence_db",),
    "frozen": ("frozen_floor",),
    "speech": ("max_speech",),  # curation's, per clip (`curate.CLIP_REJECT_REASONS`)
    "shot_cut": ("shot_threshold", "shot_screen"),
}
"""Rejection reason -> the settings that set its threshold, by their names in build.json."""


@dataclass(frozen=True)
class Verdict:
    """`reason` is None for a kept source; `loudness_db`/`motion` are NaN where not measured."""

    reason: str | None
    detail: str = ""
    loudness_db: float = math.nan
    motion: float = math.nan

    @property
    def kept(self) -> bool:
        return self.reason is None


def check(
    path: Path, info: Probe, start: float, end: float, opts: FilterOptions, clip_seconds: float
) -> Verdict:
    """Judge the span [start, end) seconds of the probed file at `path` on everything but motion
    (cheapest checks first; a span shorter than one clip of `clip_seconds` is too short); a kept
    source still has to pass `check_motion` once clipped."""
    if info.width < opts.min_width or info.height < opts.min_height:
        return Verdict(
            "low_resolution",
            f"{info.width}x{info.height} < {opts.min_width}x{opts.min_height}",
        )
    if not info.has_audio:
        return Verdict("no_audio", "the file has no audio stream")
    if end - start < clip_seconds - 1e-6:
        return Verdict("too_short", f"{end - start:.3f} s of video and audio < {clip_seconds:g} s")
    loudness = audio_level_db(path, start, end)
    if not loudness >= opts.silence_db:  # NaN (no samples) counts as silent
        return Verdict("silent", f"RMS {loudness:.1f} dBFS < {opts.silence_db:g} dBFS", loudness)
    return Verdict(None, "", loudness)


def check_motion(verdict: Verdict, motion: float, opts: FilterOptions) -> Verdict:
    """`verdict` (a kept one, from `check`) with the source's measured `motion` (mean absolute
    difference of consecutive frames, 0..1): rejected as frozen below `opts.frozen_floor`."""
    if motion < opts.frozen_floor:
        detail = f"mean frame difference {motion:.5f} < {opts.frozen_floor:g}"
        return Verdict("frozen", detail, verdict.loudness_db, motion)
    return dataclasses.replace(verdict, motion=motion)


def rms_db(samples: np.ndarray) -> float:
    """RMS level of float samples in [-1, 1], dBFS (-inf for digital silence, NaN for none)."""
    if samples.size == 0:
        return math.nan
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def frame_motion(frames: np.ndarray) -> float:
    """Mean absolute difference (0..1) of consecutive grey frames (uint8, frames x rows x cols)."""
    if len(frames) < 2:
        return 0.0
    return float(np.mean(np.abs(np.diff(frames.astype(np.int16), axis=0)))) / 255.0


def audio_level_db(path: Path, start: float, end: float) -> float:
    """RMS level of the first audio stream between `start` and `end` seconds, dBFS."""
    chunks: list[np.ndarray] = []
    with open_media(path, video=False) as container:
        stream = container.streams.audio[0]
        if start > 0:
            container.seek(int(start * av.time_base), any_frame=False)
        for frame in container.decode(stream):
            t = frame.time
            if t is None:
                continue
            if t >= end:
                break
            data = float_pcm(frame)
            first = max(0, int(round((start - t) * frame.sample_rate)))
            last = min(frame.samples, int(round((end - t) * frame.sample_rate)))
            if last > first:
                chunks.append(data[:, first:last].ravel())
    return rms_db(np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
