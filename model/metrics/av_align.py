"""AV-Align (Yariv et al. 2023): how well motion peaks in the picture meet onsets in the sound.

The definition is the code that published numbers come from, `av_align.py` of the TempoTokens
repository (guyyariv/TempoTokens), in two named variants:

    av_align       its 2025 fix (commit bf0b1e3): flow peaks of at least 0.1 px; each video peak
                   matches at most one audio onset. No score exceeds 1.
    av_align_2023  the release before it (commit 34d9502), which TempoTokens' AV-Align 0.54 on
                   Landscape was made with: every flow peak counts, and one video peak may match
                   several onsets (a score can exceed 1).

Audio onsets: the sound as `librosa.load` gives it (mono, 22.05 kHz, soxr_hq resampling), then
`librosa.onset.onset_strength` and `librosa.onset.onset_detect` with librosa's defaults, as times.
Video peaks: the frames at the video's own rate; OpenCV Farneback flow (pyr_scale 0.5, 3 levels,
window 15, 3 iterations, poly_n 5, poly_sigma 1.2) between consecutive grayscale frames, its mean
magnitude per pair (`cv2.magnitude`, `cv2.mean`); the trajectory holds the first pair twice, so
entry i is the flow into frame i (entry 0 = entry 1). A peak is entry i, 0 < i < n - 1, strictly
above both neighbours, at time i / fps.

Score: for each onset a (in order), the first video peak v (in order, unused in `av_align`) with
v - 1/fps < a < v + 1/fps (strict) is a match; AV-Align = I / (|A| + |V| - I). The reference
divides by zero when neither modality has a peak; such a video scores 0 here. A set's score is the
mean over its videos.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ONSET_RATE = 22050  # librosa.load's default rate, at which the reference detects onsets


@dataclass(frozen=True)
class Variant:
    name: str
    min_flow: float | None  # smallest flow peak (px) that counts; None: any local maximum
    one_to_one: bool  # a video peak matches at most one onset
    source: str


VARIANTS = {
    v.name: v
    for v in (
        Variant("av_align", 0.1, True, "TempoTokens av_align.py at commit bf0b1e3 (2025-02-13)"),
        Variant(
            "av_align_2023", None, False, "TempoTokens av_align.py at commit 34d9502 (2023-10-26)"
        ),
    )
}


def resample_for_onsets(wave: np.ndarray, rate: int) -> np.ndarray:
    """A mono float waveform at `rate` as `librosa.load` would give it: float32 at 22.05 kHz."""
    import librosa

    y = np.asarray(wave, dtype=np.float32)
    if rate != ONSET_RATE:
        y = librosa.resample(y, orig_sr=rate, target_sr=ONSET_RATE, res_type="soxr_hq")
    return y


def load_sound(source: str | Path | bytes) -> np.ndarray:
    """A sound file (path or encoded bytes) as the reference loads it: `librosa.load` (soundfile:
    wav, flac, ogg...); containers soundfile cannot read (an mp4's AAC track) are decoded with
    PyAV, averaged to mono and resampled the same way. Raises ValueError when there is no audio."""
    import librosa
    import soundfile

    def opened():
        return io.BytesIO(source) if isinstance(source, bytes) else source

    try:
        soundfile.info(opened())
    except (soundfile.LibsndfileError, RuntimeError):
        pass  # not a format soundfile reads: decoded with PyAV below
    else:
        return librosa.load(opened())[0]
    from landscape_av.corpus.decode import decode_audio, open_media

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with open_media(data) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
    audio = decode_audio(data)
    if audio.samples.shape[1] == 0:
        raise ValueError("the audio stream holds no samples")
    return resample_for_onsets(audio.samples.mean(axis=0), audio.sample_rate)


def audio_onsets(y: np.ndarray) -> np.ndarray:
    """Onset times (s) of a mono float32 waveform at 22.05 kHz (librosa's defaults)."""
    import librosa

    env = librosa.onset.onset_strength(y=y, sr=ONSET_RATE)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=ONSET_RATE)
    return librosa.frames_to_time(frames, sr=ONSET_RATE)


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def pair_flow(prev_gray: np.ndarray, gray: np.ndarray) -> float:
    """Mean Farneback flow magnitude (px) from one grayscale frame to the next."""
    flow = cv2.calcOpticalFlowFarneback(prev_gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return float(cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0])


class FlowTrajectory:
    """The reference's flow trajectory, built one RGB frame at a time (so that a long video at its
    native size need not be held in memory): `add(frame)` for each frame, then `values`."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.values: list[float] = []

    def add(self, frame: np.ndarray) -> None:
        gray = _gray(frame)
        if self._prev is not None:
            self.values.append(pair_flow(self._prev, gray))
            if len(self.values) == 1:  # the reference computes the first pair twice
                self.values.append(self.values[0])
        self._prev = gray


def flow_trajectory(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Flow trajectory of uint8 RGB frames [T, H, W, 3]: [T] (empty under 2 frames)."""
    traj = FlowTrajectory()
    for frame in frames:
        traj.add(frame)
    return np.asarray(traj.values, dtype=np.float64)


def motion_peaks(trajectory: np.ndarray, fps: float, min_flow: float | None) -> np.ndarray:
    """Times (s) of the strict local maxima of a flow trajectory (at least `min_flow` px)."""
    t = trajectory
    idx = [
        i
        for i in range(1, len(t) - 1)
        if t[i - 1] < t[i] > t[i + 1] and (min_flow is None or t[i] >= min_flow)
    ]
    return np.asarray(idx, dtype=np.float64) / fps


def matches(audio: np.ndarray, video: np.ndarray, fps: float, one_to_one: bool) -> int:
    """Onsets matched by a video peak strictly within one frame (1/fps s), the reference's order."""
    used = [False] * len(video)
    hits = 0
    for a in audio:
        for j, v in enumerate(video):
            if (not one_to_one or not used[j]) and v - 1 / fps < a < v + 1 / fps:
                hits += 1
                used[j] = True
                break
    return hits


def peak_iou(audio: np.ndarray, video: np.ndarray, fps: float, variant: str = "av_align") -> float:
    """I / (|A| + |V| - I) of onset times and motion-peak times (0 when neither has a peak)."""
    hits = matches(audio, video, fps, VARIANTS[variant].one_to_one)
    union = len(audio) + len(video) - hits
    return hits / union if union else 0.0


def av_align(
    trajectory: np.ndarray, fps: float, onsets: np.ndarray, variant: str = "av_align"
) -> float:
    """AV-Align of one video: its flow trajectory at its own rate `fps` and its sound's onsets."""
    peaks = motion_peaks(trajectory, fps, VARIANTS[variant].min_flow)
    return peak_iou(onsets, peaks, fps, variant)
