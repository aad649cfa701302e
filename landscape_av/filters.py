"""Stage 3: keep a source only if it is big enough, has sound, is long enough, is not silent and
is not a still picture. Every rejection carries exactly one reason from `schema.REJECT_REASONS`.

The two measured checks read only the span that would be cut into clips: the audio level decodes
its audio (cheap), the frame difference decodes a few pairs of consecutive frames spread over it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .probe import Probe

MOTION_PROBES = 8
"""Frame pairs sampled for the frozen-picture check."""
MOTION_SIZE = (64, 36)
"""Frames are compared as grey images of this size (width, height)."""


@dataclass(frozen=True)
class FilterOptions:
    min_width: int = 1280
    min_height: int = 720
    clip_seconds: float = 10.0
    silence_db: float = -60.0  # RMS level floor, dBFS
    frozen_floor: float = 0.001  # mean abs frame difference floor (0..1)


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


def check(path: Path, info: Probe, start: float, end: float, opts: FilterOptions) -> Verdict:
    """Judge the span [start, end) seconds of the probed file at `path` (cheapest checks first)."""
    if info.width < opts.min_width or info.height < opts.min_height:
        return Verdict(
            "low_resolution",
            f"{info.width}x{info.height} < {opts.min_width}x{opts.min_height}",
        )
    if not info.has_audio:
        return Verdict("no_audio", "the file has no audio stream")
    if end - start < opts.clip_seconds - 1e-6:
        return Verdict(
            "too_short", f"{end - start:.3f} s of video and audio < {opts.clip_seconds:g} s"
        )
    loudness = audio_level_db(path, start, end)
    if not loudness >= opts.silence_db:  # NaN (no samples) counts as silent
        return Verdict("silent", f"RMS {loudness:.1f} dBFS < {opts.silence_db:g} dBFS", loudness)
    motion = frame_difference(path, start, end)
    if motion < opts.frozen_floor:
        detail = f"mean frame difference {motion:.5f} < {opts.frozen_floor:g}"
        return Verdict("frozen", detail, loudness, motion)
    return Verdict(None, "", loudness, motion)


def rms_db(samples: np.ndarray) -> float:
    """RMS level of float samples in [-1, 1], dBFS (-inf for digital silence, NaN for none)."""
    if samples.size == 0:
        return math.nan
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def audio_level_db(path: Path, start: float, end: float) -> float:
    """RMS level of the first audio stream between `start` and `end` seconds, dBFS."""
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if start > 0:
            container.seek(int(start * av.time_base), any_frame=False)
        for frame in container.decode(stream):
            t = frame.time
            if t is None:
                continue
            if t >= end:
                break
            data = float_samples(frame)
            first = max(0, int(round((start - t) * frame.sample_rate)))
            last = min(frame.samples, int(round((end - t) * frame.sample_rate)))
            if last > first:
                chunks.append(data[:, first:last].ravel())
    return rms_db(np.concatenate(chunks) if chunks else np.zeros(0, np.float32))


def float_samples(frame: av.AudioFrame) -> np.ndarray:
    """(channels, samples) float32 in [-1, 1] of any sample format."""
    raw = frame.to_ndarray()
    data = raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        data /= float(np.iinfo(raw.dtype).max)
    if not frame.format.is_planar:
        data = data.reshape(-1, len(frame.layout.channels)).T
    return data


def frame_difference(path: Path, start: float, end: float, probes: int = MOTION_PROBES) -> float:
    """Mean absolute difference (0..1) of `probes` pairs of consecutive grey frames evenly spread
    over [start, end)."""
    diffs: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i in range(probes):
            t = start + (end - start) * (i + 0.5) / probes
            container.seek(int(t * av.time_base), any_frame=False)
            pair: list[np.ndarray] = []
            for frame in container.decode(stream):
                if frame.time is not None and frame.time + 1e-3 < t and not pair:
                    continue  # decode up to t from the preceding key frame
                w, h = MOTION_SIZE
                pair.append(frame.to_ndarray(width=w, height=h, format="gray").astype(np.float32))
                if len(pair) == 2:
                    break
            if len(pair) == 2:
                diffs.append(float(np.mean(np.abs(pair[1] - pair[0]))) / 255.0)
    return float(np.mean(diffs)) if diffs else 0.0
