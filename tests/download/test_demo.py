"""The offline demo source set: every class, every rejection reason, deterministic, downloadable."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from landscape_av.classes import CLASSES
from landscape_av.pipeline.download import DownloadError, DownloadOptions, download
from landscape_av.schema import REJECT_REASONS
from landscape_av.sources.demo import (
    DEMO_SECONDS,
    FAILURES,
    TEST_SECONDS,
    make_demo_sources,
    write_demo_source_list,
)
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import SOURCE_COLUMNS, Source

SIZE = (128, 72)


pytestmark = pytest.mark.slow  # each test builds or renders media


def probe(path: Path) -> dict:
    """What the pipeline's probe and filter look at: size, duration, audio level, motion."""
    with av.open(str(path)) as c:
        if not c.streams.video:
            return {"has_video": False, "has_audio": bool(c.streams.audio)}
        v = c.streams.video[0]
        info = {"size": (v.width, v.height), "duration": c.duration / 1e6, "has_video": True}
        info["has_audio"] = bool(c.streams.audio)
        grays = [f.to_ndarray(format="gray").astype(np.float32) / 255 for f in c.decode(video=0)]
        info["motion"] = float(
            np.mean([np.abs(a - b).mean() for a, b in zip(grays, grays[1:], strict=False)])
        )
    if info["has_audio"]:
        with av.open(str(path)) as c:
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        info["rms_db"] = float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12))
    return info


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    return folder, make_demo_sources(folder, size=SIZE, fps=15, seed=7, quiet=True)


def test_demo_covers_all_classes_and_every_reason(demo):
    folder, sources = demo
    good = [s for s in sources if s.expect == "ok"]
    for split in ("train", "test"):  # every class in both splits
        assert [s.class_name for s in good if s.split == split] == list(CLASSES), split
    assert {s.expect for s in sources} - {"ok"} == set(REJECT_REASONS) | set(FAILURES)
    assert len({s.source_id for s in sources}) == len(sources)
    on_disk = {p.name for p in folder.glob("*.mp4")}
    assert on_disk == {s.file for s in sources if s.expect != "missing"}


def test_demo_media_have_the_defects_they_claim(demo):
    folder, sources = demo
    infos = {s.expect: probe(folder / s.file) for s in sources if s.expect in REJECT_REASONS}
    motions = []
    for s in sources:
        if s.expect != "ok":
            continue
        info = probe(folder / s.file)
        assert info["size"] == SIZE and info["has_audio"], s.source_id
        seconds = DEMO_SECONDS if s.split == "train" else TEST_SECONDS
        assert info["duration"] == pytest.approx(seconds, abs=0.1), s.source_id
        assert info["rms_db"] > -40, s.source_id
        assert info["motion"] > 0.005, s.source_id  # 5x the filter's default floor
        motions.append(info["motion"])
    assert infos["low_resolution"]["size"] == (SIZE[0] // 2, SIZE[1] // 2)
    assert not infos["no_audio"]["has_audio"]
    assert not infos["no_video"]["has_video"] and infos["no_video"]["has_audio"]
    assert infos["too_short"]["duration"] < 10
    assert infos["silent"]["rms_db"] < -90
    assert infos["frozen"]["motion"] < 1e-4 < min(motions)
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(folder / "demo_bad_corrupt.mp4"))


def test_demo_is_deterministic_and_reused(demo, tmp_path):
    folder, sources = demo
    again = make_demo_sources(tmp_path, size=SIZE, fps=15, seed=7, quiet=True)
    assert again == sources
    assert _digests(tmp_path) == _digests(folder)
    stamp = (tmp_path / "demo.json").stat().st_mtime_ns
    make_demo_sources(tmp_path, size=SIZE, fps=15, seed=7, quiet=True)  # same settings: reused
    assert (tmp_path / "demo.json").stat().st_mtime_ns == stamp


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.mp4")}


def test_demo_source_list_downloads_through_the_server(demo, tmp_path):
    folder, sources = demo
    with serve_folder(folder) as url:
        path = write_demo_source_list(sources, url, tmp_path / "sources.csv")
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == SOURCE_COLUMNS and len(rows) == len(sources)

        def get(row: dict) -> Path:
            source = Source(row["source_id"], row["url"], row["class"])
            return download(source, tmp_path / "dl", DownloadOptions(retries=0), 100.0).path

        assert probe(get(rows[0]))["duration"] == pytest.approx(DEMO_SECONDS, abs=0.1)
        for source, row in zip(sources, rows, strict=True):
            if source.expect in FAILURES:
                with pytest.raises(DownloadError) as err:
                    get(row)
                assert ("download", err.value.reason) == source.expected_failure


def test_demo_mixes_real_sounds_with_credits(shared_media, tmp_path):
    sources = make_demo_sources(tmp_path, size=SIZE, fps=15, media_dir=shared_media, quiet=True)
    rain = next(s for s in sources if s.class_name == "raining")
    assert rain.license.startswith("video: CC0-1.0; sound: ")  # the recording's licence follows
    assert "rain" in rain.attribution and "github:" in rain.attribution
    squish = next(s for s in sources if s.class_name == "squishing water")  # no recording of it
    assert squish.license == "CC0-1.0"
    assert probe(tmp_path / rain.file)["rms_db"] > -40
