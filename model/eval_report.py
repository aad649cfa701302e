"""The reports of `model.evaluate`: metrics.json, metrics.md and the terminal summary.

One table per group of metrics, a row per video set (the real clips, the run's framings and
baselines, each --videos folder), every column headed by the protocol that made it, the protocols'
records below, then the problems (missing, extra, unreadable, wrong-length videos) counted and
listed, and published Landscape numbers quoted apart with their protocols and sources, never in
our rows. Output made with stand-in networks carries a MEANINGLESS banner everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.metrics.networks import STANDIN_NOTE

GROUPS = (
    (
        "Video quality (the seed paper's Table 2)",
        ("fvd2048_", "asva_fvd", "is_nvidia", "isv2048_ucf"),
    ),
    ("Sound-motion alignment", ("av_align", "av_align_2023")),
    ("CLIP similarity (the seed paper's Table 3a)", ("clip_text", "clip_audio")),
    ("Distance to the source clip (not the paper's Table 3b)", ("source_mse", "source_lpips")),
)
HEADS = {
    "asva_fvd": "FVD ↓ [asva_fvd]",
    "is_nvidia": "IS frames ↑ [is_nvidia]",
    "isv2048_ucf": "IS video ↑ [isv2048_ucf]",
    "av_align": "AV-Align ↑ [av_align]",
    "av_align_2023": "AV-Align ↑ [av_align_2023]",
    "clip_text": "text ↔ video ↑ [clip_sim]",
    "clip_audio": "audio ↔ video ↑ [clip_sim]",
    "source_mse": "MSE [source]",
    "source_lpips": "LPIPS [source]",
}
PUBLISHED = (
    (
        "seed paper (ECCV'22)",
        "FVD 291.88, IS 1.82; CLIP text-video 0.2556, audio-video 0.1897",
        "its own protocol (networks, frames and clip counts not published)",
    ),
    (
        "TempoTokens (AAAI'24)",
        "FVD 784, IS (C3D) 4.49, CLIPSIM 0.57, AV-Align 0.54",
        "AV-Align: av_align_2023 on its 102 test clips; FVD/IS: its own scripts",
    ),
    (
        "MM-Diffusion (CVPR'23)",
        "FVD 117.20, KVD 5.78",
        "2048 unconditional samples, 16 frames at 10 fps, 64 px, PyTorch I3D (i3d_pretrained_400.pt) "
        "against the train set; not reproduced here (another I3D network)",
    ),
    ("AVSyncD (ECCV'24)", "FVD 449.59 (audio guidance 4.0)", "asva_fvd (ASVA README)"),
)


def _columns(rows: dict[str, dict], prefixes: tuple[str, ...]) -> list[str]:
    found = {k for r in rows.values() for k in r if k not in ("per_video", "title", "videos")}
    return [
        k
        for p in prefixes
        for k in sorted(found)
        if k == p or (p.endswith("_") and k.startswith(p))
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _head(name: str) -> str:
    return HEADS.get(name, f"FVD ↓ [{name}]")


def metrics_markdown(result: dict) -> str:
    rows = result["rows"]
    lines = []
    if result["standin"]:
        lines += [f"> **{STANDIN_NOTE}.** These numbers mean nothing.", ""]
    what = result["checkpoint"] or ", ".join(result["videos_folders"])
    lines += [f"# Evaluation of {what}", ""]
    if result["shards"]:
        lines += [f"{result['clips']} test clips of `{result['shards']}`, seed {result['seed']}, "
                  f"frames at {result['resolution']} px.", ""]  # fmt: skip
    if result["model_rate"]:
        fps = f"{result['fps']:g} fps" if result["fps"] else "each clip's own rate"
        lines += [f"The run's rows: `@walk` is one frame per walked latent at the model's rate "
                  f"({result['model_rate']:g} fps), `@render` the same walk rendered at {fps}.", ""]  # fmt: skip
    for title, prefixes in GROUPS:
        cols = _columns(rows, prefixes)
        if not cols:
            continue
        lines += [f"## {title}", "", "| | videos | " + " | ".join(_head(c) for c in cols) + " |",
                  "|---|---:|" + "---:|" * len(cols)]  # fmt: skip
        for name in result["row_order"]:
            values = rows[name]
            lines.append(
                f"| {name} | {values['videos']} | "
                + " | ".join(_fmt(values.get(c)) for c in cols)
                + " |"
            )
        lines.append("")
    lines += ["## Protocols", "", "| protocol | metric | frames | rate | offset | px | network (sha256) | code |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, p in result["protocols"].items():
        sha = ", ".join(f"{f} {d[:12]}" for f, d in p["network_sha256"].items()) or "–"
        if p.get("standin"):
            sha += " **STAND-IN**"
        frames = p["frames"] if p["frames"] else "all"
        lines.append(f"| `{name}` | {p['metric']} | {frames} x {p['windows']} | {p['rate']} | {p['offset']} | "
                     f"{p['resolution'] or 'own'} | {sha} | {p['source']}; {p['variant']} |")  # fmt: skip
    lines.append("")
    if result["problems"]:
        lines += ["## Videos left out or flagged", ""]
        for row, kinds in result["problems"].items():
            counts = ", ".join(f"{len(v)} {k.replace('_', '-')}" for k, v in kinds.items())
            lines.append(f"- **{row}**: {counts}")
            for items in kinds.values():
                lines += [f"  - {line}" for line in items[:20]]
                if len(items) > 20:
                    lines.append(f"  - ... {len(items) - 20} more (metrics.json)")
        lines.append("")
    if result["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result["skipped"]] + [""]
    lines += ["## Published Landscape numbers (other protocols, not our rows)", "",
              "| work | numbers | protocol |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {w} | {n} | {p} |" for w, n, p in PUBLISHED]
    return "\n".join(lines) + "\n"


def write_reports(result: dict, out: Path) -> None:
    body = dict(result)
    if result["standin"]:
        body = {"warning": STANDIN_NOTE, **body}
    (out / "metrics.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    (out / "metrics.md").write_text(metrics_markdown(result))


def print_summary(result: dict) -> None:
    """The tables' numbers on the terminal, each with its protocol, and the problem counts."""
    if result["standin"]:
        print(f"!!! {STANDIN_NOTE} !!!")
    for name in result["row_order"]:
        values = result["rows"][name]
        parts = [
            f"{k} {_fmt(v)}" for k, v in values.items() if k not in ("per_video", "title", "videos")
        ]
        print(f"{name} ({values['videos']} videos): " + "; ".join(parts))
    for row, counts in result["counts"].items():
        print(f"{row}: " + ", ".join(f"{n} {k.replace('_', '-')}" for k, n in counts.items()))
    if result["standin"]:
        print(f"!!! {STANDIN_NOTE} !!!")
