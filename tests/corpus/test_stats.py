"""`landscape-av stats`: the numbers of the manifests, as a table, as JSON and as plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape_av.classes import CLASSES
from landscape_av.cli import main
from landscape_av.corpus import Corpus
from landscape_av.corpus.stats import FIGURES, SPLIT_COLORS, corpus_stats, draw_figures
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


def _overlap(a, b) -> float:
    """Area shared by two matplotlib rectangles."""
    (ax0, ay0), (ax1, ay1) = a.get_bbox().get_points()
    (bx0, by0), (bx1, by1) = b.get_bbox().get_points()
    return max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))


@pytest.mark.parametrize("name", ["class_balance", "loudness", "motion", "shard_sizes"])
def test_every_colour_drawn_is_a_split_of_the_legend(demo_corpus: Path, name: str) -> None:
    """Bars of the splits are opaque, of their split's legend colour, and never overlap (an
    overlap would blend a colour that the legend does not have); the shard sizes say the split."""
    from matplotlib.colors import to_hex

    corpus = Corpus(demo_corpus)
    fig = draw_figures(corpus, corpus_stats(corpus))[name]
    ax = fig.axes[0]
    legend = ax.get_legend()
    shown = {t.get_text(): to_hex(h.get_facecolor()) for t, h in
             zip(legend.get_texts(), legend.legend_handles, strict=True)}  # fmt: skip
    assert shown == {s: to_hex(SPLIT_COLORS[s]) for s in SPLITS}
    bars = [p for p in ax.patches if p.get_width() and p.get_height()]
    assert bars and {to_hex(p.get_facecolor()) for p in bars} <= set(shown.values())
    assert all(p.get_alpha() in (None, 1) and p.get_facecolor()[3] == 1 for p in bars)
    for i, a in enumerate(bars):
        for b in bars[i + 1 :]:
            assert _overlap(a, b) < 1e-9 or a.get_facecolor() == b.get_facecolor(), (a, b)
    counted = {"loudness": "loudness_db", "motion": "motion", "shard_sizes": None}
    if name in counted:  # every clip (shard) is in some bar, those at the range's ends too
        frame = corpus.manifests()["shards" if name == "shard_sizes" else "clips"]
        rows = len(frame) if counted[name] is None else int(frame[counted[name]].notna().sum())
        assert sum(p.get_height() for p in bars) == rows
    import matplotlib.pyplot as plt

    plt.close("all")
