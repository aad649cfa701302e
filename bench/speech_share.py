"""What `--speech` measures on nature sound, with and without a voice: the ground of `--max-speech`'s
default (`landscape_av.pipeline.curate.CurateOptions.max_speech`).

Nature: every recording of ../shared/media (its audio files and the soundtracks of its videos) and
the sound of each good source of the offline demo, cut into 10 s clips (a shorter one looped to
10 s, as the demo loops it): the speech share of each clip, and the highest speech probability of
any 32 ms chunk (how near the 0.5 threshold it came).

Voice: a sentence (about 6.5 s) and a short phrase (about 1 s) spoken by espeak-ng, mixed into
10 s of each nature recording 2 s in, at speech-to-nature RMS ratios of +6, 0, -6 and -12 dB: the
measured share against the voice's own length (its first to last sample over 1% of full scale).

    python bench/speech_share.py                      # ../shared/media beside the repo
    python bench/speech_share.py --media PATH --json results.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from landscape_av.curation.models import speech_model
from landscape_av.curation.vad import SAMPLE_RATE, speech_share
from landscape_av.ffmpeg import ffmpeg_exe
from landscape_av.pipeline.curate import CurateOptions, one_thread
from landscape_av.sources.demo import make_demo_sources

CLIP = 10 * SAMPLE_RATE
VOICES = {
    "sentence": "The waterfall in this valley is one of the tallest in the country, and in spring "
    "the river carries melted snow from the mountains.",
    "phrase": "Look at this.",
}
LEVELS_DB = (6, 0, -6, -12)


def sound(path: Path, seconds: float | None = None) -> np.ndarray:
    """Mono 16 kHz float sound of `path` (looped to `seconds` where given; empty without audio)."""
    loop = ["-stream_loop", "-1", "-t", f"{seconds}"] if seconds else []
    cmd = [ffmpeg_exe(), "-v", "error", *loop, "-i", str(path), "-vn", "-ac", "2"]
    run = subprocess.run([*cmd, "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"], capture_output=True)
    return np.frombuffer(run.stdout, np.float32).reshape(-1, 2).mean(axis=1)


def clips(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + CLIP] for i in range(0, audio.size - CLIP + 1, CLIP)]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--media", type=Path, default=repo.parent / "shared" / "media")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    vad = speech_model()
    limit = CurateOptions().max_speech
    results: dict = {"nature": {}, "voice": []}
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp, one_thread():
        tmp = Path(tmp)
        demo = make_demo_sources(tmp / "demo", size=(64, 36), quiet=True)
        files = sorted(
            p for p in args.media.iterdir() if p.suffix in (".ogg", ".mp3", ".mp4", ".webm")
        )
        files += [tmp / "demo" / s.file for s in demo if s.expect == "ok"]
        print(f"{'nature recording':<62} {'clips':>5} {'max share':>9} {'max p':>6}")
        for path in files:
            audio = sound(path)
            if audio.size == 0 or rms(audio) == 0:
                continue  # no sound track, or digital silence
            if audio.size < CLIP:
                audio = sound(path, 10.5)[:CLIP]
            shares = [speech_share(vad, c)[0] for c in clips(audio)]
            top = float(vad(torch.from_numpy(audio.copy())).max())
            name = path.name if path.parent == args.media else f"demo/{path.name}"
            results["nature"][name] = {"shares": shares, "max_probability": top}
            print(f"{name[:62]:<62} {len(shares):>5} {max(shares):>9.3f} {top:>6.3f}")
        nature = results["nature"]
        worst = max(max(r["shares"]) for r in nature.values())
        top = max(r["max_probability"] for r in nature.values())
        n = sum(len(r["shares"]) for r in nature.values())
        print(f"{n} nature clips: highest share {worst:.3f}, highest chunk probability {top:.3f}")

        espeak = shutil.which("espeak-ng")
        if espeak is None:
            print("espeak-ng is not installed: no voice mixes")
        else:
            recordings = [p for p in files if p.suffix in (".ogg", ".mp3")]
            for kind, text in VOICES.items():
                wav = tmp / f"{kind}.wav"
                subprocess.run([espeak, "-w", str(wav), "-s", "160", text], check=True)
                voice = sound(wav)
                on = np.flatnonzero(np.abs(voice) > 0.01)
                voice = voice[on[0] : on[-1] + 1]
                truth = voice.size / CLIP
                for level in LEVELS_DB:
                    found = []
                    for path in recordings:
                        mix = sound(path, 10.5)[:CLIP].copy()
                        gain = rms(mix) / rms(voice) * 10 ** (level / 20)
                        mix[2 * SAMPLE_RATE : 2 * SAMPLE_RATE + voice.size] += voice * gain
                        found.append(speech_share(vad, mix)[0])
                    row = {"voice": kind, "db": level, "truth": truth, "shares": found}
                    results["voice"].append(row)
                    caught = sum(s > limit for s in found)
                    print(
                        f"{kind} ({truth:.3f} of the clip) at {level:+d} dB: measured "
                        f"{min(found):.3f}..{max(found):.3f}, median {np.median(found):.3f}; "
                        f"over --max-speech {limit:g} in {caught} of {len(found)} recordings"
                    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
