"""`landscape-av stats`: the numbers of the manifests, as a table, as JSON and as plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape_av.classes import CLASSES
from landscape_av.cli import main
from landscape_av.corpus.stats import FIGURES
from landscape_av.schema import SPLITS


def test_json_matches_the_manifests(corpus_copy: Path, manifests) -> None:
    result = CliRunner().invoke(main, ["stats", str(corpus_copy), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    clips, sources, shards = manifests["clips"], manifests["sources"], manifests["shards"]
    failures = manifests["failures"]
    assert stats["totals"]["clips"] == len(clips)
    assert stats["totals"]["hours"] == pytest.approx(clips["duration"].sum() / 3600)
    assert stats["totals"]["bytes"] == shards["bytes"].sum()
    assert stats["totals"]["failures"] == len(failures)
    for row in stats["per_class"]:
        for split in SPLITS:
            mine = clips[(clips["class"] == row["class"]) & (clips["split"] == split)]
            assert row[split]["clips"] == len(mine)
            assert row[split]["sources_used"] == mine["source_id"].nunique()
        bad = failures[failures["class"] == row["class"]]
        assert row["rejected"] == bad["reason"].value_counts().to_dict()
    assert sum(stats["rejections"].values()) == len(failures)
    assert stats["totals"]["sources"] == len(sources)
    size = f"{clips['width'].iloc[0]}x{clips['height'].iloc[0]}"
    assert stats["distributions"]["clip_resolution"] == {size: len(clips)}
    assert stats["distributions"]["loudness_db"]["max"] == pytest.approx(clips["loudness_db"].max())
    for name in FIGURES:
        png = Path(stats["figures"][name])
        assert png.parent == corpus_copy / "figures" and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_table_names_every_class(full_demo_corpus: Path) -> None:
    result = CliRunner().invoke(main, ["stats", str(full_demo_corpus), "--no-figures"])
    assert result.exit_code == 0, result.output
    for name in CLASSES:
        assert name in result.output
    assert "Rejected or failed sources" in result.output


def test_a_folder_without_manifests_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code == 1
    assert "is missing: is" in result.output and "a built corpus?" in result.output
