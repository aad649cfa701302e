"""The whole build through the real CLI: yt-dlp over 127.0.0.1, ffmpeg, webdataset shards and
manifests that agree with each other, every rejection and HTTP failure recorded, reruns that reuse
everything and change no byte."""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path

import pandas as pd
import pytest
import webdataset as wds
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.cli.build import STAGES
from landscape_av.corpus import Corpus
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.engines.registry import ENGINES, open_engine
from landscape_av.pipeline.settings import flat_settings
from landscape_av.schema import SampleMeta

from .conftest import write_media_list

SMALL = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]

ROWS = [  # source_id, file or path on the server, class, split[, start]
    ("good", "good.mp4", "raining", "train"),
    ("good2", "good2.mp4", "fire crackling", ""),
    ("rotated", "rotated.mp4", "wind noise", "test"),
    ("lowres", "lowres.mp4", "thunderstorm", ""),
    ("noaudio", "noaudio.mp4", "waterfall burbling", ""),
    ("short", "short.mp4", "volcano eruption", ""),
    ("silent", "silent.mp4", "squishing water", ""),
    ("frozen", "frozen.mp4", "underwater bubbling", ""),
    ("missing", "missing.mp4", "splashing water", ""),
    ("err500", "status/500", "splashing water", ""),
    ("cut", "cut/good2.mp4", "raining", ""),
    ("novideo", "novideo.mp4", "thunderstorm", ""),
    ("far", "good2.mp4", "raining", "", "80000"),  # a start beyond the end of the video
]
EXPECTED_FAILURES = {
    ("lowres", "filter", "low_resolution"),
    ("noaudio", "filter", "no_audio"),
    ("short", "filter", "too_short"),
    ("silent", "filter", "silent"),
    ("frozen", "filter", "frozen"),
    ("missing", "download", "http_404"),
    ("err500", "download", "http_500"),
    ("cut", "download", "truncated"),
    ("novideo", "filter", "no_video"),
    ("far", "filter", "too_short"),
}


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(main, ["build", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def corpus(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("build")
    write_media_list(
        tmp / "sources.csv", [(i, f"{media_server}{f}", c, *s) for i, f, c, *s in ROWS]
    )
    out = tmp / "corpus"
    summary = run_cli("--source-list", str(tmp / "sources.csv"), "--out", str(out), *SMALL)
    return out, summary


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_every_rejection_and_failure_is_recorded(corpus):
    out, summary = corpus
    m = Corpus(out).manifests()
    failures = {(r.source_id, r.stage, r.reason) for r in m["failures"].itertuples()}
    assert failures == EXPECTED_FAILURES
    assert all(m["failures"]["detail"].str.len() > 0)
    sources = m["sources"].set_index("source_id")
    assert list(sources.index) == [r[0] for r in ROWS]  # source-list order
    assert sources.loc[["good", "good2", "rotated"], "status"].eq("clipped").all()
    assert sources.loc["frozen", "status"] == "rejected"
    # motion is measured on the clips: a kept source's is the mean of its clips'
    clip_motion = m["clips"].groupby("source_id")["motion"].mean()
    assert sources.loc["good", "motion"] == pytest.approx(clip_motion["good"], abs=1e-6)
    assert sources.loc["frozen", "motion"] < 0.001 / 4
    assert sources.loc["missing", "status"] == "failed"
    assert sources.loc["rotated", ["width", "height", "rotation"]].tolist() == [360, 640, 90]
    assert (summary["clipped"], summary["rejected"], summary["failed"]) == (3, 7, 3)
    assert "beyond the end" in m["failures"].set_index("source_id").loc["far", "detail"]


@pytest.mark.slow
def test_clips_shards_and_manifests_agree(corpus):
    out, summary = corpus
    m = Corpus(out).manifests()
    clips, shards = m["clips"], m["shards"]
    assert clips.groupby("source_id").size().to_dict() == {"good": 2, "good2": 1, "rotated": 1}
    assert summary["clips"] == len(clips) == 4
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(shards["shard"])
    seen = []
    for row in shards.itertuples():
        path = out / "data" / row.shard
        data = path.read_bytes()
        assert (len(data), sha(data)) == (row.bytes, row.sha256)
        assert row.shard.startswith(f"{row.split}-")
        samples = list(wds.WebDataset(str(path), shardshuffle=False))
        assert len(samples) == row.samples
        assert (samples[0]["__key__"], samples[-1]["__key__"]) == (row.first_key, row.last_key)
        for sample in samples:
            meta = json.loads(sample["json"])
            assert set(meta) == set(typing.get_type_hints(SampleMeta))
            assert meta["key"] == sample["__key__"] and "." not in meta["key"]
            assert meta["split"] == row.split
            for ext in ("mp4", "flac", "jpg"):
                assert meta["sha256"][ext] == sha(sample[ext])
            clip = clips.set_index("key").loc[meta["key"]]
            assert clip["shard"] == row.shard and clip["sha256_json"] == sha(sample["json"])
            assert clip["bytes"] == sum(len(sample[e]) for e in ("mp4", "flac", "jpg", "json"))
            assert (meta["num_frames"], meta["num_samples"]) == (300, 441000)
            assert (meta["width"], meta["height"], meta["fps"]) == (320, 180, 30.0)
            assert meta["end"] - meta["start"] == meta["duration"] == 10.0
            seen.append(meta["key"])
    assert seen == clips["key"].tolist()
    assert [m for m in seen if m.startswith("good_")] == ["good_00", "good_01"]


@pytest.mark.slow
def test_split_hygiene(corpus):
    out, _ = corpus
    m = Corpus(out).manifests()
    per_source = m["clips"].groupby("source_id")["split"].nunique()
    assert (per_source == 1).all()
    splits = m["sources"].set_index("source_id")["split"]
    assert (splits["good"], splits["rotated"]) == ("train", "test")  # the source list's own split
    clip_splits = m["clips"].groupby("source_id")["split"].first().to_dict()
    assert clip_splits == {sid: splits[sid] for sid in clip_splits}


@pytest.mark.slow
def test_corpus_files(corpus):
    out, _ = corpus
    build = json.loads((out / "build.json").read_text())
    assert build["config"]["width"] == 320 and build["config"]["min_height"] == 180
    assert "ffmpeg" in build["tools"]["ffmpeg"]
    assert (out / "README.md").read_text().startswith("---")
    for name in ("sources", "clips", "shards", "failures"):
        csv = pd.read_csv(out / "manifests" / f"{name}.csv", keep_default_na=False)
        assert len(csv) == len(Corpus(out).manifests()[name])


@pytest.mark.slow
def test_rerun_reuses_everything_and_changes_nothing(corpus, tmp_path: Path):
    out, summary = corpus
    files = sorted(p for d in ("data", "manifests") for p in (out / d).iterdir())
    before = {p: p.read_bytes() for p in files}
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    source_list = out.parent / "sources.csv"
    again = run_cli("--manifest", str(source_list), "--out", str(out), *SMALL)  # the old flag
    assert again == summary
    assert {p: p.read_bytes() for p in files} == before
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == mtimes  # not rewritten


@pytest.mark.slow
def test_worker_counts_change_no_byte(corpus, tmp_path: Path):
    """One worker fetching one source at a time builds the same corpus as the default pool."""
    out, summary = corpus
    alone = tmp_path / "alone"
    serial = ["--workers", "1", "--downloads", "1"]
    again = run_cli(
        "--source-list", str(out.parent / "sources.csv"), "--out", str(alone), *SMALL, *serial
    )
    assert again | {"out": ""} == summary | {"out": ""}
    files = [out / "README.md", out / "build.json"]
    files += sorted(p for d in ("data", "manifests") for p in (out / d).iterdir())
    for path in files:
        assert (alone / path.relative_to(out)).read_bytes() == path.read_bytes(), path.name


def test_dry_run_lists_the_plan(tmp_path: Path, media_server: str):
    lines = ["source_id,url,class,start,end,split,license,attribution"]
    lines += [f"{i},{media_server}{f},{c},{''.join(s[1:])},,{s[0]},," for i, f, c, *s in ROWS]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    args = ["build", "--source-list", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--dry-run", "--json", "--classes", "raining"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [s["source_id"] for s in plan["sources"]] == ["good", "cut", "far"]
    assert not (tmp_path / "o").exists()
    limited = CliRunner().invoke(main, [*args, "--dry-run", "--json", "--limit", "3"])
    assert len(json.loads(limited.stdout)["sources"]) == 3


def test_every_setting_is_an_option_under_its_stage(tmp_path: Path):
    """The settings options set the nested BuildConfig: the plan shows what build.json would
    record, one flat name per setting, defaults where no option is given."""
    source_list = tmp_path / "m.csv"
    source_list.write_text(
        "source_id,url,class,start,end,split,license,attribution\n"
        "a,http://127.0.0.1:9/a.mp4,raining,,,,,\n"
    )
    base = ["build", "--source-list", str(source_list), "--dry-run", "--json"]
    default = json.loads(CliRunner().invoke(main, base).stdout)["config"]
    assert default == BuildConfig().to_json()
    assert (default["clip_seconds"], default["min_width"], default["shard_max_bytes"]) == (
        10.0,
        1280,
        1_000_000_000,
    )
    changed = {
        "--clip-seconds": ("2.5", {"clip_seconds": 2.5}),
        "--size": ("64x36", {"width": 64, "height": 36}),
        "--min-size": ("32x18", {"min_width": 32, "min_height": 18}),
        "--silence-db": ("-70", {"silence_db": -70.0}),
        "--download-timeout": ("7", {"download_timeout": 7.0}),
        "--rate-limit": ("1M", {"rate_limit": "1M"}),
        "--shard-size": ("2MB", {"shard_max_bytes": 2_000_000}),
        "--shard-samples": ("5", {"shard_max_samples": 5}),
        "--test-fraction": ("0.5", {"test_fraction": 0.5}),
    }
    args = [x for flag, (value, _) in changed.items() for x in (flag, value)]
    result = CliRunner().invoke(main, [*base, *args, "--allow-local"])
    assert result.exit_code == 0, result.output
    expected = default | {"allow_local": True}
    for _, want in changed.values():
        expected |= want
    assert json.loads(result.stdout)["config"] == expected
    help_text = CliRunner().invoke(main, ["build", "--help"], env={"COLUMNS": "200"}).output
    headings = [line for line in help_text.splitlines() if line.endswith("options:")]
    assert headings == [f"{title}:" for title in STAGES.values()]
    for flag in changed:
        assert flag in help_text


def test_every_engine_option_opens_its_engine():
    """`--engine` offers exactly the engines the build can open by name, each of its own kind."""
    choices = flat_settings(BuildConfig())["engine"].setting.choices
    assert set(choices) == set(ENGINES)
    engines = [open_engine(BuildConfig(engine=name)) for name in choices]
    assert len({type(e) for e in engines}) == len(choices)
    assert all(callable(e.run) for e in engines)


def test_bad_input_is_reported_with_its_location(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "source_id,url,class,start,end,split,license,attribution\n"
        "ok,http://127.0.0.1:9/a.mp4,raining,,,,,\n"
        "x.y,http://127.0.0.1:9/b.mp4,hail,,,,,\n"
    )
    out = str(tmp_path / "out")
    result = CliRunner().invoke(main, ["build", "--source-list", str(bad), "--out", out])
    assert result.exit_code == 1
    assert f"{bad}:3" in result.output and "hail" in result.output
    for args, message in [
        (["--size", "big"], "is not WIDTHxHEIGHT"),
        (["--classes", "hail"], "unknown class"),
        (["--shard-size", "lots"], "is not a size"),
        (["--demo", "--manifest", str(bad)], "exclude each other"),
    ]:
        result = CliRunner().invoke(main, ["build", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_dry_run_of_a_long_list_prints_its_summary_and_first_rows(tmp_path: Path):
    """A plan of any length prints its summary and the first `PLAN_ROWS` sources (rendering a
    table of 200k rows took minutes and a GB); --json lists every source; --quiet the summary."""
    from landscape_av.cli.build import PLAN_ROWS

    n = 2000
    rows = [
        f"s{i},https://example.org/{i}.mp4,{('raining', 'wind noise')[i % 2]},,,,,"
        for i in range(n)
    ]
    path = tmp_path / "long.csv"
    path.write_text("source_id,url,class,start,end,split,license,attribution\n" + "\n".join(rows))
    args = ["build", "--source-list", str(path), "--out", str(tmp_path / "o"), "--dry-run"]
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0, shown.output
    assert len(shown.output.splitlines()) < PLAN_ROWS + 30, shown.output
    text = " ".join(shown.output.split())  # the terminal wraps long lines
    assert f"Plan: {n:,} sources" in text and "wind noise 1,000, raining 1,000" in text
    assert f" s{PLAN_ROWS - 1} " in text and f" s{PLAN_ROWS} " not in text
    assert f"{n - PLAN_ROWS:,} more: --json lists every source" in text
    quiet = CliRunner().invoke(main, [*args, "--quiet"])
    assert quiet.exit_code == 0 and len(quiet.output.splitlines()) < 12, quiet.output
    assert " s0 " not in " ".join(quiet.output.split())
    listed = CliRunner().invoke(main, [*args, "--json"])
    assert [s["source_id"] for s in json.loads(listed.stdout)["sources"]] == [
        f"s{i}" for i in range(n)
    ]
