"""Stage 5 (optional): judge each clip with pretrained models, on the clip stage's own decode.

- `--speech`: Silero VAD (`curation.vad`) over each clip's sound (a 16 kHz mono copy of the decode,
  `clip.Taps`) gives the share of the clip's 10 s that is speech; a clip with more than
  `--max-speech` of it is rejected (`speech`). Landscape is nature sound: a voice-over teaches a
  sound-guided generator that speech belongs to waterfalls.
- `--shots`: TransNetV2 (`curation.shots`) over the decoded frames (a 48x27 RGB copy) finds shot
  transitions; a clip that holds frames of two shots is rejected (`shot_cut`): it would teach a
  jump of the picture that no sound caused. The transitions go into the sources manifest. On a CPU
  TransNetV2 costs more than the clip stage, so it reads only the windows where more of the
  picture changes than usually does in that shot (`--shot-screen`; 0 reads every window);
  bench/shot_screen.py measures what that loses.

Clips stay where the clip stage cut them (consecutive from the span's start): the transitions are
known only once the span is decoded, and the one decode also encodes the clips, so laying clips out
within shots would need a second decode of every source before it (bench/README.md measures what
that costs) and would move every clip of an unchanged source. Rejecting keeps one decode, keeps the
keys and times of the kept clips those of a build without the stage, and loses only the clips that
span a transition.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from landscape_av.curation.models import SHOT_MODEL, SPEECH_MODEL, shot_model, speech_model
from landscape_av.pipeline.clip import ClipOptions, ClipResult, Taps
from landscape_av.pipeline.settings import setting

SPEECH_RATE = 16000
"""Sample rate of the sound Silero VAD reads (`curation.vad.SAMPLE_RATE`)."""
SHOT_FRAME_SIZE = (48, 27)
"""Size of the frames TransNetV2 reads (`curation.shots.FRAME_SIZE`)."""


@dataclass(frozen=True)
class CurateOptions:
    """The curation stages (off by default: they need the `curate` extra) and their thresholds."""

    speech: bool = setting(
        False,
        when="speech",
        help="Measure each clip's speech (Silero VAD) and reject clips over --max-speech "
        "(pip install 'landscape-av[curate]').",
    )
    max_speech: float = setting(
        0.05,
        low=0,
        high=1,
        when="speech",
        help="With --speech: the share of a clip that may be speech (0..1).",
    )
    shots: bool = setting(
        False,
        when="shots",
        help="Find shot transitions (TransNetV2) and reject clips that span one "
        "(pip install 'landscape-av[curate]').",
    )
    shot_screen: float = setting(
        0.2,
        low=0,
        high=1,
        when="shots",
        help="With --shots: TransNetV2 reads only the windows where the share of the picture "
        "(48x27) that changes over half a second exceeds its median over the 8 s around by more "
        "than this (0..1); 0: every window.",
    )
    shot_threshold: float = setting(
        0.5,
        low=0,
        high=1,
        low_open=True,
        when="shots",
        help="With --shots: the transition probability over which a frame is a transition.",
    )

    @property
    def on(self) -> bool:
        return self.speech or self.shots

    def taps(self) -> Taps:
        """The copies of the clip stage's decode that the stages that are on read."""
        return Taps(
            sound_rate=SPEECH_RATE if self.speech else 0,
            frame_size=SHOT_FRAME_SIZE if self.shots else None,
        )

    def columns(self) -> set[str]:
        """The optional manifest columns (`schema.OPTIONAL_FIELDS`) of the stages that are on."""
        return ({"speech"} if self.speech else set()) | ({"shot_cuts"} if self.shots else set())

    def models(self) -> dict[str, Any]:
        """The models of the stages that are on, as build.json records them (package, file,
        sha256, licence); raises `CurationUnavailable` (one line naming the extra to install)
        when one is not installed."""
        chosen = [(self.speech, SPEECH_MODEL), (self.shots, SHOT_MODEL)]
        return {model.stage: model.record() for on, model in chosen if on}


@dataclass(frozen=True)
class ClipVerdict:
    """`reason` (a key of `schema.CLIP_REJECT_REASONS`) is None for a kept clip; `speech` is NaN when not
    measured."""

    reason: str | None
    detail: str = ""
    speech: float = math.nan


@dataclass(frozen=True)
class Curated:
    """A source's clips judged: one verdict per clip, the frames (from the span's start) where a
    new shot starts with each transition's peak probability, and how many of TransNetV2's windows
    the screen let it read, of how many."""

    verdicts: list[ClipVerdict]
    cuts: list[tuple[int, float]]
    windows: tuple[int, int] = (0, 0)


def curate(clips: list[ClipResult], opts: CurateOptions, clip: ClipOptions) -> Curated:
    """Judge `clips` (consecutive, from the span's start, cut with `opts.taps()`)."""
    with one_thread():
        transitions, windows = _transitions(clips, opts, clip.fps) if opts.shots else ([], (0, 0))
        shares = [_speech(c) if opts.speech else math.nan for c in clips]
    verdicts = []
    for c, share in zip(clips, shares, strict=True):
        first, end = c.index * clip.frames, (c.index + 1) * clip.frames
        crossing = [t for t in transitions if t[0].crosses(first, end)]
        if crossing:
            t, peak = crossing[0]
            at = (t.last + 1 - first) / clip.fps
            detail = (
                f"a new shot starts {at:.2f} s into the clip (transition probability {peak:.2f})"
            )
            verdicts.append(ClipVerdict("shot_cut", detail, share))
        elif share > opts.max_speech:
            detail = f"speech in {share:.1%} of the clip > --max-speech {opts.max_speech:.1%}"
            verdicts.append(ClipVerdict("speech", detail, share))
        else:
            verdicts.append(ClipVerdict(None, "", share))
    cuts = [(t.last + 1, peak) for t, peak in transitions]
    return Curated(verdicts, cuts, windows)


def _speech(clip: ClipResult) -> float:
    from landscape_av.curation.vad import speech_share

    if clip.sound is None:
        raise ValueError(f"clip {clip.index} was cut without the sound tap")
    return round(speech_share(speech_model(), clip.sound)[0], 4)


def _transitions(
    clips: list[ClipResult], opts: CurateOptions, fps: int
) -> tuple[list[tuple[Any, float]], tuple[int, int]]:
    """TransNetV2's transitions over all the clips' frames (one sequence: the clips are
    consecutive), with the peak probability of each; and (windows read, windows)."""
    from landscape_av.curation.shots import predict, transitions

    if any(c.frames is None for c in clips):
        raise ValueError("clips were cut without the frame tap")
    frames = np.concatenate([c.frames for c in clips])
    lag, around = max(1, round(fps / 2)), 4 * fps  # half a second; 4 s either side
    probs, read, total = predict(shot_model(), frames, opts.shot_screen, lag, around)
    found = transitions(probs, opts.shot_threshold)
    return [(t, round(float(probs[t.first : t.last + 1].max()), 4)) for t in found], (read, total)


_threads = threading.Lock()
_users = 0
_saved = 0


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread while any caller is inside (the build's parallelism is per source,
    as with the encoders, and one thread gives the same numbers everywhere); the previous count
    comes back when the last caller leaves."""
    import torch

    global _users, _saved
    with _threads:
        if _users == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _threads:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)
