"""The built-in offline source set: generated videos for every class, plus deliberately bad sources.

`make_demo_sources(folder)` renders, with ffmpeg's lavfi generators, one moving video per class in
`CLASSES` (its own generator, colours and class-flavoured sound), long enough for two 10 s clips,
for the train split, and a second one of one clip for the test split (so every class is in both);
one bad source per filter rejection reason (`schema.REJECT_REASONS`) and per failure mode (a
corrupt file, a URL that answers 404). `write_demo_source_list(sources, base_url, path)` writes the
source list whose URLs point at a server of that folder (`serve.serve_folder`).

Files are faststart mp4 (the loopback server ignores Range requests), byte-identical for the same
size, fps and seed: bitexact muxing, no metadata, single-threaded encoders, seeded noise.

With `media_dir` (files named `CLASS__ORIGIN__NAME.ext`, and optionally a `SOURCES.tsv` with
`file`, `origin`, `original_path`, `license` columns), a class that has a real recording gets it as
its sound track (looped to length) instead of the generated one, and its credits go into the
source list's license and attribution columns.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from landscape_av import processes
from landscape_av.classes import CLASSES, slug
from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.files import atomic_path, atomic_write
from landscape_av.schema import REJECT_REASONS
from landscape_av.sources.source_list import Source, write_source_list

DEMO_SOURCE_LIST = "demo"
"""The name of the demo's source list, as build.json records it (the card tells a demo by it)."""
DEMO_SECONDS = 21.0
"""Length of a good demo source: two 10 s clips and a margin."""
TEST_SECONDS = 11.0
"""Length of a good test-split demo source: one 10 s clip and a margin."""
SHORT_SECONDS = 5.0
"""Length of the too-short source (less than one 10 s clip)."""
SAMPLE_RATE = 48000
GENERATED_LICENSE = "CC0-1.0"
GENERATED_ATTRIBUTION = "landscape-av demo source, generated with ffmpeg lavfi"
STAMP_FILE = "demo.json"
FAILURES: tuple[str, ...] = ("corrupt", "missing")
"""Failure modes besides the reject reasons: a file that is not media, a URL that answers 404."""


@dataclass(frozen=True)
class DemoSource:
    """One demo source. `expect` is "ok", a key of `REJECT_REASONS` (the filter must reject it so),
    "corrupt" (not a media file: the download fails) or "missing" (its URL answers 404)."""

    source_id: str
    class_name: str
    file: str  # name inside the demo folder ("missing" sources have none on disk)
    expect: str
    license: str = GENERATED_LICENSE
    attribution: str = GENERATED_ATTRIBUTION
    split: str = ""  # "" leaves it to the build

    @property
    def expected_failure(self) -> tuple[str, str] | None:
        """(stage, reason) the build must record for this source, None for a good one."""
        if self.expect == "ok":
            return None
        if self.expect in REJECT_REASONS:
            return ("filter", self.expect)
        return ("download", {"corrupt": "invalid_media", "missing": "http_404"}[self.expect])


# Per class: video generator and audio graph. {w}x{h}: a quarter of the size ({hw}x{hh}: an eighth,
# for the cell automata, whose cells would otherwise be too fine to compress); {r}: fps; {s}: seed;
# {sr}: SAMPLE_RATE. Audio chains are mono.
_VIDEO: dict[str, str] = {
    "thunderstorm": "gradients=s={w}x{h}:r={r}:c0=0x0a0f1e:c1=0x3a4660:c2=0x141c30:nb_colors=3"
    ":speed=0.05:seed={s},eq=brightness='0.55*lt(mod(t\\,4.3)\\,0.2)':eval=frame",
    "waterfall burbling": "cellauto=s={hw}x{hh}:rate={r}:rule=110:random_fill_ratio=0.5"
    ":random_seed={s}:scroll=1,format=rgb24,colorchannelmixer=rr=0.35:gg=0.65:bb=1.0,vflip",
    "volcano eruption": "gradients=s={w}x{h}:r={r}:c0=0x300000:c1=0xff4000:c2=0xffc000"
    ":c3=0x100000:nb_colors=4:speed=0.2:type=spiral:seed={s}",
    "squishing water": "life=s={hw}x{hh}:rate={r}:random_seed={s}:ratio=0.3:mold=8"
    ":life_color=0x70a040:death_color=0x302010:mold_color=0x605030",
    "wind noise": "color=c=0x8fb4dc:s={w}x{h}:r={r},noise=alls=60:allf=t+u:all_seed={s}"
    ",avgblur=sizeX=12:sizeY=1",
    "fire crackling": "cellauto=s={hw}x{hh}:rate={r}:rule=150:random_fill_ratio=0.4"
    ":random_seed={s}:scroll=1,format=rgb24,colorchannelmixer=rr=1.0:gg=0.45:bb=0.05",
    "raining": "color=c=0x4a5568:s={w}x{h}:r={r},noise=alls=70:allf=t+u:all_seed={s}"
    ",avgblur=sizeX=1:sizeY=10",
    "underwater bubbling": "sierpinski=s={w}x{h}:rate={r}:seed={s}:type=triangle,format=rgb24"
    ",colorchannelmixer=rr=0.1:gg=0.6:bb=0.8",
    "splashing water": "gradients=s={w}x{h}:r={r}:c0=0xe8f6ff:c1=0x2a6fb0:c2=0x7fc8f0:nb_colors=3"
    ":speed=0.4:type=circular:seed={s}",
}
_AUDIO: dict[str, str] = {
    "thunderstorm": "anoisesrc=r={sr}:color=brown:amplitude=0.6:seed={s}"
    ",volume='0.3+0.7*lt(mod(t\\,4.3)\\,0.9)':eval=frame",
    "waterfall burbling": "anoisesrc=r={sr}:color=pink:amplitude=0.4:seed={s}",
    "volcano eruption": "aevalsrc='0.5*sin(2*PI*38*t)*(0.6+0.4*sin(2*PI*0.3*t))':s={sr}",
    "squishing water": "aevalsrc='0.5*sin(2*PI*(180+120*sin(2*PI*3*t))*t)*lt(mod(t\\,0.7)\\,0.25)'"
    ":s={sr}",
    "wind noise": "anoisesrc=r={sr}:color=pink:amplitude=0.5:seed={s},tremolo=f=0.25:d=0.7"
    ",lowpass=f=900",
    "fire crackling": "anoisesrc=r={sr}:color=velvet:amplitude=0.7:seed={s}",
    "raining": "anoisesrc=r={sr}:color=white:amplitude=0.3:seed={s},highpass=f=300,lowpass=f=6000",
    "underwater bubbling": "aevalsrc='0.5*sin(2*PI*(250+400*mod(t*2.5\\,1))*t)"
    "*lt(mod(t*2.5\\,1)\\,0.3)':s={sr},lowpass=f=1500",
    "splashing water": "anoisesrc=r={sr}:color=blue:amplitude=0.5:seed={s}"
    ",volume='0.2+0.8*lt(mod(t\\,1.7)\\,0.4)':eval=frame",
}
_SILENCE = "anullsrc=r={sr}:cl=mono"
_STILL = "smptehdbars=s={w}x{h}:r={r}"


@dataclass(frozen=True)
class _Render:
    """How to render one file: generator graphs, size, length, audio file or none."""

    out: Path
    video: str | None  # a lavfi graph, or None for no video stream
    audio: str | None  # a lavfi graph, or None for no audio stream
    audio_file: Path | None
    size: tuple[int, int]
    fps: int
    seconds: float


def make_demo_sources(
    folder: Path,
    *,
    size: tuple[int, int] = (1280, 720),
    fps: int = 30,
    seed: int = 0,
    media_dir: Path | None = None,
    workers: int | None = None,
    quiet: bool = False,
    classes: Sequence[str] = CLASSES,
) -> list[DemoSource]:
    """Render the demo source set of `classes` into `folder` (created); return its sources, good
    ones first.

    Good sources are `size` (width, height) at `fps`: per class, a train one DEMO_SECONDS long and
    a test one TEST_SECONDS long (its own seed); the low-resolution one is half that size in each
    dimension. The faulty sources come with the class each is made of. Reuses the files of an
    earlier call with the same settings.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    if width < 32 or height < 32 or width % 4 or height % 4:
        raise ValueError(f"demo size {width}x{height}: both sides must be multiples of 4, >= 32")
    credits = _real_sounds(Path(media_dir)) if media_dir is not None else {}

    sources: list[DemoSource] = []
    renders: list[_Render] = []
    for index, name in enumerate(CLASSES):
        if name not in classes:
            continue
        sid = f"demo_{slug(name)}"
        real = credits.get(name)
        license, attribution = GENERATED_LICENSE, GENERATED_ATTRIBUTION
        if real:
            license = f"video: {GENERATED_LICENSE}; sound: {real[1]}"
            attribution = f"{GENERATED_ATTRIBUTION}; sound: {real[2]}"
        audio_file = real[0] if real else None
        for split, sid_split, seconds, seeded in (
            ("train", sid, DEMO_SECONDS, seed + index),
            ("test", f"{sid}_test", TEST_SECONDS, seed + 200 + index),
        ):
            sources.append(
                DemoSource(sid_split, name, f"{sid_split}.mp4", "ok", license, attribution, split)
            )
            renders.append(
                _render(
                    folder,
                    sid_split,
                    name,
                    size,
                    fps,
                    seeded,
                    seconds=seconds,
                    audio_file=audio_file,
                )
            )
    n_bad = len(CLASSES)

    def bad(reason: str, cls: str, at: tuple[int, int] = size, **kw) -> None:
        nonlocal n_bad
        n_bad += 1  # seeds 100 + 10, 11, ...: those of the set before test sources were added
        if cls not in classes:
            return
        sid = f"demo_bad_{reason}"
        sources.append(DemoSource(sid, cls, f"{sid}.mp4", reason))
        if reason in REJECT_REASONS:
            renders.append(_render(folder, sid, cls, at, fps, seed + 100 + n_bad, **kw))

    # classes with cheap generators: these files only need their one defect
    bad("low_resolution", CLASSES[0], at=(width // 2, height // 2))
    bad("no_audio", CLASSES[2], no_audio=True)
    bad("too_short", CLASSES[7], seconds=SHORT_SECONDS)
    bad("silent", CLASSES[2], silent=True)
    bad("frozen", CLASSES[0], still=True)
    bad("corrupt", CLASSES[5])
    bad("missing", CLASSES[6])
    bad("no_video", CLASSES[4], no_video=True)
    if set(classes) >= set(CLASSES):
        assert {s.expect for s in sources} == {"ok", *REJECT_REASONS, *FAILURES}

    # what was asked and exactly how each file is made: any change renders everything again
    stamp = {"seed": seed, "sources": [asdict(s) for s in sources]}
    stamp["renders"] = [{k: str(v) for k, v in asdict(r).items()} for r in renders]
    stamp_path = folder / STAMP_FILE
    if _stamp_matches(stamp_path, stamp, folder, sources):
        return sources
    stamp_path.unlink(missing_ok=True)
    _write_corrupt(folder / "demo_bad_corrupt.mp4", seed)
    _render_all(renders, workers, quiet)
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    return sources


def write_demo_source_list(sources: Sequence[DemoSource], base_url: str, path: Path) -> Path:
    """Write the source list of `sources`, URLs under `base_url`; start and end are left to the
    build. Returns `path`."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    rows = [
        Source(
            s.source_id,
            base + s.file,
            s.class_name,
            split=s.split or None,
            license=s.license,
            attribution=s.attribution,
        )
        for s in sources
    ]
    return write_source_list(rows, path)


def _render(
    folder: Path,
    sid: str,
    cls: str,
    size: tuple[int, int],
    fps: int,
    seed: int,
    *,
    seconds: float = DEMO_SECONDS,
    no_audio: bool = False,
    no_video: bool = False,
    silent: bool = False,
    still: bool = False,
    audio_file: Path | None = None,
) -> _Render:
    # Generators run at a quarter of the size (they are per-pixel and slow) and are scaled up.
    gw, gh = max(size[0] // 4 // 2 * 2, 16), max(size[1] // 4 // 2 * 2, 16)
    fmt = {"w": gw, "h": gh, "hw": gw // 2, "hh": gh // 2, "r": fps, "s": seed, "sr": SAMPLE_RATE}
    video = None if no_video else (_STILL if still else _VIDEO[cls]).format(**fmt)
    audio = None if no_audio else (_SILENCE if silent else _AUDIO[cls]).format(**fmt)
    return _Render(folder / f"{sid}.mp4", video, audio, audio_file, size, fps, seconds)


def _encode(job: _Render) -> None:
    """Render one file with ffmpeg into a temporary name, then rename it into place."""
    w, h = job.size
    args: list[str | os.PathLike[str]] = []
    if job.video is not None:
        args += ["-f", "lavfi", "-i", job.video]
    if job.audio_file is not None:
        args += ["-stream_loop", "-1", "-i", job.audio_file]
    elif job.audio is not None:
        args += ["-f", "lavfi", "-i", job.audio]
    args += ["-t", f"{job.seconds:.3f}"]
    if job.video is not None:
        args += ["-map", "0:v", "-vf", f"scale={w}:{h}:flags=bilinear,format=yuv420p,setsar=1"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", str(2 * job.fps)]
        args += ["-threads", "1", "-flags:v", "+bitexact"]
    if job.audio_file is not None or job.audio is not None:
        audio_input = "1:a" if job.video is not None else "0:a"
        args += ["-map", audio_input, "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "aac"]
        args += ["-b:a", "96k", "-flags:a", "+bitexact"]
    args += ["-fflags", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart"]
    with atomic_path(job.out, suffix=".part.mp4") as tmp:
        run_ffmpeg([*args, tmp])


def _render_all(renders: list[_Render], workers: int | None, quiet: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    workers = workers or os.cpu_count() or 1
    columns = ("demo sources", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    pool = ThreadPoolExecutor(workers)
    with Progress(*columns, disable=quiet, transient=False) as progress:
        task = progress.add_task("render", total=len(renders))
        try:
            for _ in pool.map(_encode, renders):
                progress.advance(task)
        except BaseException:  # Ctrl-C, a failed render: kill the running ffmpegs, start no more
            processes.stop_all()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    pool.shutdown()


def _write_corrupt(path: Path, seed: int) -> None:
    """An mp4 name and file-type box, followed by noise: no demuxer can read it."""
    noise = np.random.default_rng(seed).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    atomic_write(path, b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + noise)


def _stamp_matches(path: Path, stamp: dict, folder: Path, sources: list[DemoSource]) -> bool:
    try:
        same = json.loads(path.read_text()) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        return False
    return same and all((folder / s.file).is_file() for s in sources if s.expect != "missing")


def _real_sounds(media_dir: Path) -> dict[str, tuple[Path, str, str]]:
    """class name -> (audio file, license, attribution) for the first recording of each class."""
    if not media_dir.is_dir():
        raise NotADirectoryError(f"media folder {media_dir} does not exist")
    table: dict[str, dict[str, str]] = {}
    tsv = media_dir / "SOURCES.tsv"
    if tsv.is_file():
        with tsv.open(newline="", encoding="utf-8") as f:
            table = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    found: dict[str, tuple[Path, str, str]] = {}
    for file in sorted(media_dir.iterdir()):
        prefix, sep, _ = file.name.partition("__")
        cls = _class_of_prefix(prefix) if sep else None
        if cls is None or cls in found or file.suffix.lower() not in _AUDIO_EXTS:
            continue
        row = table.get(file.name, {})
        origin = " ".join(filter(None, (row.get("origin"), row.get("original_path"))))
        found[cls] = (file, row.get("license") or "see media folder", origin or file.name)
    return found


_AUDIO_EXTS = frozenset({".ogg", ".oga", ".mp3", ".wav", ".flac", ".opus", ".m4a"})


def _class_of_prefix(prefix: str) -> str | None:
    """The class a media file prefix names: 'rain' -> 'raining', 'squishing_water' -> ...; None
    when no class (or more than one) starts with it."""
    words = prefix.replace("_", " ").strip().lower()
    matches = [c for c in CLASSES if words and c.startswith(words)]
    return matches[0] if len(matches) == 1 else None
