"""Statistics of a built corpus, read from its manifests: counts, hours, rejections, distributions.

`corpus_stats(folder)` returns a JSON-ready dict; `stats_table` renders it for the terminal and
`draw_figures` draws the plots (class balance, rejections, loudness, motion, shard sizes, and
speech in builds that measure it) and `write_figures` saves them into `OUT/figures/`. The dataset
card and `landscape-av stats` both use this module.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from landscape_av.corpus.corpus import Corpus
from landscape_av.schema import CLIP_REJECT_REASONS, SPLITS

FIGURES: dict[str, str] = {
    "class_balance": "Clips per class and split",
    "rejections": "Rejected or failed sources by reason",
    "loudness": "Clip loudness (RMS, dBFS)",
    "motion": "Clip motion (mean absolute frame difference)",
    "shard_sizes": "Shard sizes",
}
"""Figure name (file `figures/<name>.png`) -> caption."""
OPTIONAL_FIGURES: dict[str, tuple[str, str]] = {
    "speech": ("Clip speech share (Silero VAD)", "speech"),
}
"""Figures of the measures that only some builds make: name -> (caption, clips column); a corpus
has one where its clips manifest has the column (`schema.OPTIONAL_FIELDS`)."""

SUMMARIES: tuple[tuple[str, str, float], ...] = (
    ("source_duration", "source duration (s)", 1.0),
    ("clip_duration", "clip duration (s)", 1.0),
    ("loudness_db", "clip loudness (dBFS)", 1.0),
    ("motion", "clip motion (0..1)", 1.0),
    ("speech", "clip speech share (0..1)", 1.0),
    ("shard_bytes", "shard size (MB)", 1e-6),
    ("shard_samples", "samples per shard", 1.0),
)
"""Distributions summarised by quantiles: key in `distributions`, label, display scale (one that a
corpus lacks, such as speech without --speech, is None there and left out)."""

COUNTS: tuple[tuple[str, str], ...] = (
    ("source_resolution", "source resolution"),
    ("source_fps", "source frame rate"),
    ("clip_resolution", "clip resolution"),
    ("clip_fps", "clip frame rate"),
)
"""Distributions given as value counts: key in `distributions`, label."""


def _summary(values: pd.Series) -> dict[str, float] | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None
    q = values.quantile([0.0, 0.05, 0.5, 0.95, 1.0]).tolist()
    names = ("min", "p05", "median", "p95", "max")
    return dict(zip(names, map(float, q), strict=True)) | {"mean": float(values.mean())}


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def _size(frame: pd.DataFrame) -> pd.Series:
    return frame["width"].astype(str) + "x" + frame["height"].astype(str)


def corpus_stats(folder: Corpus | Path) -> dict[str, Any]:
    """Everything `stats` reports about the corpus in `folder`, as plain JSON-ready values."""
    corpus = Corpus.of(folder)
    m = corpus.manifests()
    clips, sources, shards, failures = m["clips"], m["sources"], m["shards"], m["failures"]
    probed = sources[sources["width"] > 0]

    per_class = []
    for label, name in enumerate(corpus.classes):
        row: dict[str, Any] = {"class": name, "label": label}
        for split in SPLITS:
            sel = clips[(clips["class"] == name) & (clips["split"] == split)]
            listed = sources[(sources["class"] == name) & (sources["split"] == split)]
            row[split] = {
                "sources": len(listed),
                "sources_used": int(sel["source_id"].nunique()),
                "clips": len(sel),
                "hours": float(sel["duration"].sum()) / 3600,
            }
        row["rejected"] = _counts(failures.loc[failures["class"] == name, "reason"])
        row["lost"] = int(((sources["class"] == name) & (sources["status"] == "lost")).sum())
        per_class.append(row)

    per_split = {
        split: {
            key: sum(r[split][key] for r in per_class)
            for key in ("sources", "sources_used", "clips", "hours")
        }
        | {
            "shards": int((shards["split"] == split).sum()),
            "bytes": int(shards.loc[shards["split"] == split, "bytes"].sum()),
        }
        for split in SPLITS
    }
    rejections = {
        f"{stage}/{reason}": int(n)
        for (stage, reason), n in failures.groupby(["stage", "reason"]).size().items()
    }
    lost = int((sources["status"] == "lost").sum())
    return {
        "folder": corpus.location,
        "totals": {
            "sources": len(sources),
            "sources_used": int(clips["source_id"].nunique()),
            "lost": lost,  # gone from their site (private, removed): the list's attrition
            "attrition": lost / len(sources) if len(sources) else 0.0,
            "clips": len(clips),
            "hours": float(clips["duration"].sum()) / 3600,
            "shards": len(shards),
            "bytes": int(shards["bytes"].sum()),
            "failures": len(failures),
        },
        "per_split": per_split,
        "per_class": per_class,
        "rejections": rejections,
        "distributions": {
            "source_resolution": _counts(_size(probed)),
            "source_fps": _counts(probed["fps"].round(3)),
            "source_duration": _summary(probed["duration"]),
            "clip_resolution": _counts(_size(clips)),
            "clip_fps": _counts(clips["fps"]),
            "clip_duration": _summary(clips["duration"]),
            "loudness_db": _summary(clips["loudness_db"]),
            "motion": _summary(clips["motion"]),
            "speech": _summary(clips["speech"]) if "speech" in clips else None,
            "shard_bytes": _summary(shards["bytes"]),
            "shard_samples": _summary(shards["samples"]),
        },
    }


def figure_captions(folder: Corpus | Path) -> dict[str, str]:
    """The corpus's figures and their captions: `FIGURES`, and the `OPTIONAL_FIGURES` whose
    column its clips manifest has (none where that manifest is unreadable: `verify` says so)."""
    try:
        columns = Corpus.of(folder).manifest("clips").columns
    except (OSError, ValueError):
        return dict(FIGURES)
    optional = {name: cap for name, (cap, column) in OPTIONAL_FIGURES.items() if column in columns}
    return FIGURES | optional


def figure_paths(folder: Corpus | Path) -> dict[str, Path]:
    """Where each figure of the corpus (`figure_captions`) lives in its folder."""
    corpus = Corpus.of(folder)
    return {name: corpus.figures_dir / f"{name}.png" for name in figure_captions(corpus)}


SPLIT_COLORS = {"train": "tab:blue", "test": "tab:orange"}
"""One colour per split, the same in every figure."""


def write_figures(folder: Corpus | Path, stats: dict[str, Any]) -> dict[str, Path]:
    """Draw every figure of the corpus (`figure_captions`) into `folder/figures/` (PNG,
    deterministic); return the paths."""
    corpus = Corpus.of(folder)
    paths = figure_paths(corpus)
    corpus.figures_dir.mkdir(parents=True, exist_ok=True)
    meta = {"Software": None}  # no version/date stamps: same corpus, same bytes
    for name, fig in draw_figures(corpus, stats).items():
        fig.savefig(paths[name], dpi=100, metadata=meta)
    return paths


def load_matplotlib() -> tuple[type, type, type]:
    """What `draw_figures` draws with: matplotlib's Agg canvas, Figure and MaxNLocator, imported
    on the first call (about 0.3 CPU-s: bench/source_cost.py; a build makes that call in a thread
    while a core waits)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    return FigureCanvasAgg, Figure, MaxNLocator


def draw_figures(folder: Corpus | Path, stats: dict[str, Any]) -> dict[str, Any]:
    """The matplotlib Figure of each figure of the corpus (`figure_captions`), captioned. Splits
    keep the colours of `SPLIT_COLORS`, and no two bars overlap, so every colour drawn is one that
    the legend shows. They are drawn by matplotlib's Agg renderer directly: without pyplot, its
    global figure manager and its import."""
    FigureCanvasAgg, Figure, MaxNLocator = load_matplotlib()

    def subplots(figsize: tuple[float, float]) -> tuple[Any, Any]:
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        return fig, fig.subplots()

    corpus = Corpus.of(folder)
    captions = figure_captions(corpus)
    m = corpus.manifests()
    clips, shards = m["clips"], m["shards"]
    figures: dict[str, Any] = {}

    def done(fig, name: str) -> None:
        for ax in fig.axes:  # counts are whole numbers
            histogram = name in ("loudness", "motion", "shard_sizes", *OPTIONAL_FIGURES)
            counted = ax.yaxis if histogram else ax.xaxis
            counted.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(captions[name])
        fig.tight_layout()
        # laid out for good: without a layout engine (tight_layout leaves a placeholder one),
        # savefig draws once instead of a dry run first (the same bytes)
        fig.set_layout_engine(None)
        figures[name] = fig

    def nothing(name: str, what: str) -> None:
        """A figure with nothing to draw: it says so instead of showing empty axes."""
        fig, ax = subplots(figsize=(6, 2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, what, ha="center", va="center", fontsize=14, transform=ax.transAxes)
        done(fig, name)

    def by_split(
        ax,
        frame: pd.DataFrame,
        column: str,
        bins: int,
        unit: float = 1.0,
        value_range: tuple[float, float] | None = None,
    ) -> None:
        """Histogram of `column` / `unit` in `bins` bins over `value_range` (default: its whole
        range), the bars of the splits side by side in each bin (every row counted: the edges come
        from the same values)."""
        values = frame[column] / unit
        edges = np.histogram_bin_edges(values.dropna(), bins=bins, range=value_range)
        present = [s for s in SPLITS if (frame["split"] == s).any()]
        data = [values[frame["split"] == s].dropna() for s in present]
        ax.hist(data, bins=edges, label=present, color=[SPLIT_COLORS[s] for s in present])
        ax.legend(title="split")

    if clips.empty:
        nothing("class_balance", "no clips")
    else:
        fig, ax = subplots(figsize=(8, 4))
        names = [r["class"] for r in stats["per_class"]]
        bottom = [0] * len(names)
        for split in SPLITS:
            counts = [r[split]["clips"] for r in stats["per_class"]]
            ax.barh(names, counts, left=bottom, label=split, color=SPLIT_COLORS[split])
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.invert_yaxis()
        ax.set_xlim(0, max(max(bottom), 1) * 1.3)  # room for the legend
        ax.set_xlabel("clips")
        ax.legend(loc="lower right", title="split")
        done(fig, "class_balance")

    if not stats["rejections"]:
        nothing("rejections", "no rejected or failed source")
    else:
        fig, ax = subplots(figsize=(8, 3.5))
        reasons = stats["rejections"]
        ax.barh(list(reasons), list(reasons.values()), color="tab:red")
        ax.invert_yaxis()
        clip_reasons = any(r.partition("/")[2] in CLIP_REJECT_REASONS for r in reasons)
        ax.set_xlabel("sources (clips for clip reasons)" if clip_reasons else "sources")
        done(fig, "rejections")

    histograms = [
        ("loudness", "loudness_db", "dBFS", None),
        ("motion", "motion", "mean |frame difference|", None),
    ]
    if "speech" in captions:
        histograms.append(("speech", "speech", "share of the clip that is speech", (0.0, 1.0)))
    for name, column, unit, value_range in histograms:
        if clips[column].dropna().empty:
            nothing(name, "no clips")
            continue
        fig, ax = subplots(figsize=(6, 3.5))
        by_split(ax, clips, column, bins=30, value_range=value_range)
        ax.set_xlabel(unit)
        ax.set_ylabel("clips")
        done(fig, name)

    if shards.empty:
        nothing("shard_sizes", "no shards")
    else:
        fig, ax = subplots(figsize=(6, 3.5))
        by_split(ax, shards, "bytes", bins=20, unit=1e6)
        ax.set_xlabel("MB")
        ax.set_ylabel("shards")
        done(fig, "shard_sizes")
    return figures


def stats_tables(stats: dict[str, Any]) -> list[Table]:
    """The terminal view of `corpus_stats`: classes x splits, rejections, distributions."""
    classes = Table(title=f"Landscape-AV corpus: {stats['folder']}")
    for name in ("class", "split", "sources", "clips", "hours", "rejected sources"):
        justify = "left" if name in ("class", "split", "rejected sources") else "right"
        classes.add_column(name, justify=justify, no_wrap=name == "class")
    rejected: Counter[str] = Counter()
    for r in stats["per_class"]:
        rejected.update(r["rejected"])
    total = {"class": "all", "rejected": dict(rejected)} | {
        s: stats["per_split"][s] for s in SPLITS
    }
    for r in [*stats["per_class"], total]:
        for split in SPLITS:
            v = r[split]
            first = split == SPLITS[0]
            classes.add_row(
                r["class"] if first else "",
                split,
                f"{v['sources_used']}/{v['sources']}",
                f"{v['clips']:,}",
                f"{v['hours']:.3f}",
                ", ".join(f"{k}: {n}" for k, n in r["rejected"].items()) if first else "",
                end_section=split == SPLITS[-1],
            )
    classes.caption = "sources: used/listed; rejected: reason: sources (any split)"

    rejections = Table(title="Rejected or failed sources")
    rejections.add_column("stage/reason")
    rejections.add_column("sources", justify="right")
    for reason, n in stats["rejections"].items():
        rejections.add_row(reason, f"{n:,}")

    dist = Table(title="Distributions")
    dist.add_column("quantity")
    for q in ("min", "5%", "median", "95%", "max"):
        dist.add_column(q, justify="right")
    d = stats["distributions"]
    for name, label, scale in SUMMARIES:
        if d[name]:
            cells = (f"{d[name][k] * scale:.4g}" for k in ("min", "p05", "median", "p95", "max"))
            dist.add_row(label, *cells)
    counts = Table(title="Counts")
    counts.add_column("quantity")
    counts.add_column("value: count")
    for name, label in COUNTS:
        counts.add_row(label, ", ".join(f"{k}: {v}" for k, v in d[name].items()) or "-")
    t = stats["totals"]
    counts.add_row(
        "shards", f"{t['shards']} shards, {t['bytes'] / 1e9:.3f} GB, {t['clips']:,} clips"
    )
    counts.add_row("lost sources", attrition_line(t))
    return [classes, rejections, dist, counts]


def attrition_line(totals: dict[str, Any]) -> str:
    """How much of the source list is gone from its sites (private or removed videos)."""
    return (
        f"{totals['lost']:,} of {totals['sources']:,} ({totals['attrition']:.1%}) no longer "
        "available (private or removed)"
    )
