"""Real media for the curation tests: nature recordings from `../shared/media`, speech spoken by
espeak-ng (a Debian package) mixed in at a known time, and two real videos joined by a hard cut at
a known frame. Every file is made at test time from the shared originals, which stay untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from landscape_av.curation.models import SHOT_MODEL, SPEECH_MODEL, CurationUnavailable
from landscape_av.ffmpeg import ffmpeg_exe

RATE = 48000
NATURE = "waterfall__redeclipse-sounds__creek.ogg"
"""The nature recording under the speech (a burbling creek, 5 s, looped)."""
SENTENCE = (
    "The waterfall in this valley is one of the tallest in the country, and in spring the river "
    "carries melted snow from the mountains."
)
SPEECH_START = 3.0
"""Where the voice starts in the voiced source (s)."""
CUT_FRAME = 120
"""The frame (at 30 fps) where the joined video's second source starts."""
PICTURE = "color=c=0x406080:size=320x180:rate=30,noise=alls=20:allf=t"
"""The voiced sources' picture: a steady shot (see `voiced`)."""


def ffmpeg(*args: str) -> bytes:
    return subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", *args], check=True, capture_output=True
    ).stdout


def decode(path: Path, seconds: float | None = None) -> np.ndarray:
    """The sound of `path` as float stereo at RATE (looped to `seconds` where given)."""
    loop = ["-stream_loop", "-1", "-t", f"{seconds}"] if seconds else []
    raw = ffmpeg(*loop, "-i", str(path), "-vn", "-ac", "2", "-ar", str(RATE), "-f", "f32le", "-")
    return np.frombuffer(raw, np.float32).reshape(-1, 2).copy()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@dataclass(frozen=True)
class Voiced:
    """A source whose first clip has speech in it: `with_voice` and the same without
    (`without_voice`), and where the voice is, seconds from the start."""

    with_voice: Path
    without_voice: Path
    start: float
    end: float


@pytest.fixture(scope="session")
def curate_extra() -> None:
    """Skip, saying which package is missing, where the `curate` extra is not installed."""
    for model in (SPEECH_MODEL, SHOT_MODEL):
        try:
            model.locate()
        except CurationUnavailable as e:
            pytest.skip(str(e))


@pytest.fixture(scope="session")
def espeak() -> str:
    """espeak-ng; the tests that need it skip without it, except under
    LANDSCAPE_AV_REQUIRE_ESPEAK=1 (CI, which installs it), where they fail."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        why = "espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)"
        if os.environ.get("LANDSCAPE_AV_REQUIRE_ESPEAK") == "1":
            pytest.fail(f"LANDSCAPE_AV_REQUIRE_ESPEAK=1 but {why}")
        pytest.skip(why)
    return exe


@pytest.fixture(scope="session")
def voiced(tmp_path_factory: pytest.TempPathFactory, shared_media: Path, espeak: str) -> Voiced:
    """22 s of the creek (two 10 s clips) under a steady picture (a colour with noise: it moves
    enough for the frozen filter, too little for `--shots`' screen to read it); in `with_voice`,
    espeak-ng's sentence (about 6.5 s) starts at SPEECH_START, as loud (RMS) as the creek."""
    d = tmp_path_factory.mktemp("voiced")
    subprocess.run([espeak, "-w", str(d / "say.wav"), "-s", "160", SENTENCE], check=True)
    speech = decode(d / "say.wav").mean(axis=1)
    voiced = np.flatnonzero(np.abs(speech) > 0.01)  # the sentence without espeak's silences
    speech = speech[voiced[0] : voiced[-1] + 1]
    nature = decode(shared_media / NATURE, 22.0)
    mixed = nature.copy()
    at = round(SPEECH_START * RATE)
    mixed[at : at + speech.size] += (speech * rms(nature) / rms(speech))[:, None]
    paths = []
    for name, sound in (("with_voice", mixed), ("without_voice", nature)):
        wav = d / f"{name}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes())
        mp4 = d / f"{name}.mp4"
        ffmpeg(
            "-f", "lavfi", "-i", PICTURE, "-i", str(wav), "-t", "22",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-b:a", "192k", "-movflags", "+faststart", str(mp4),
        )  # fmt: skip
        paths.append(mp4)
    return Voiced(*paths, SPEECH_START, SPEECH_START + speech.size / RATE)


@pytest.fixture(scope="session")
def joined(tmp_path_factory: pytest.TempPathFactory, shared_media: Path) -> Path:
    """7 s of video at 30 fps: the flower (a real shot) for CUT_FRAME frames, then a hard cut to
    the stream of water (another real shot), under the creek's sound. Both shots are steady, so
    `--shots`' screen reads only the windows around the cut."""
    d = tmp_path_factory.mktemp("joined")
    first = shared_media / "video_nature__mdn-interactive-examples__flower.mp4"
    second = shared_media / "video_waterfall__mdn-interactive-examples__stream-of-water.mp4"
    each = "fps=30,scale=640:360,setsar=1,format=yuv420p"
    graph = f"[0:v]{each},trim=end_frame={CUT_FRAME}[a];[1:v]{each}[b];[a][b]concat=n=2:v=1:a=0[v]"
    out = d / "joined.mp4"
    ffmpeg(
        "-i", str(first), "-i", str(second), "-stream_loop", "-1", "-i", str(shared_media / NATURE),
        "-filter_complex", graph, "-map", "[v]", "-map", "2:a", "-t", "7",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags", "+faststart", str(out),
    )  # fmt: skip
    return out
