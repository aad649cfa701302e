"""The paper's list (TempoTokens `landscape.csv`) fetched over loopback HTTP, converted under the
fault policy, and the build's default choice between it and the shipped VGGSounder pool."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pandas as pd
import pytest

from landscape_av.resources import shipped_source_list
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import read_source_list
from landscape_av.sources.vggsound import (
    FetchError,
    convert_landscape_list,
    default_source_list,
    fetch_text,
)

LIST = "landscape-tempotokens.csv"


@pytest.fixture(scope="module")
def shared_list(shared_dir: Path) -> Path:
    path = shared_dir / "manifests" / LIST
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def list_url(shared_list: Path):
    with serve_folder(shared_list.parent) as base:
        yield base + LIST


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{LIST}"


def expected_from_raw(path: Path) -> dict[str, object]:
    """The policy's outcome computed straight from the raw CSV with pandas (independently of the
    converter): lines are 1-based file lines, the header is line 1."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw["line"] = raw.index + 2
    valid_id = raw["ytid"].map(lambda x: re.fullmatch(r"[A-Za-z0-9_-]{11}", x) is not None)
    invalid = raw[~valid_id]
    rows = raw[valid_id]
    repeat = rows.duplicated(["ytid", "start_time", "class", "set"], keep="first")
    exact, rows = rows[repeat], rows[~repeat]
    two_classes = rows.groupby("ytid")["class"].transform("nunique") > 1
    conflict, rows = rows[two_classes], rows[~two_classes]
    in_test = rows.groupby("ytid")["set"].transform(lambda s: (s == "test").any())
    split_drop = rows[in_test & (rows["set"] == "train")]
    rows = rows.drop(split_drop.index)
    again = rows.duplicated("ytid", keep="first")
    repeat_id, kept = rows[again], rows[~again]
    return {
        "rows": len(raw),
        "ids": raw["ytid"].nunique(),
        "invalid_id": invalid["line"].tolist(),
        "exact_repeat": exact["line"].tolist(),
        "class_conflict": conflict["line"].tolist(),
        "split_conflict": split_drop["line"].tolist(),
        "repeat_id": repeat_id["line"].tolist(),
        "late_start": kept[kept["start_time"].astype(float) > 3600]["line"].tolist(),
        "kept": kept,
    }


def test_fetch_and_convert_over_loopback(shared_list: Path, list_url: str) -> None:
    text = fetch_text(list_url, timeout=5)
    assert text == shared_list.read_bytes().decode("utf-8")
    c = convert_landscape_list(text, list_url)
    want = expected_from_raw(shared_list)
    assert (want["rows"], want["ids"]) == (1178, 1135)  # the list as its README describes it
    assert c.rows == want["rows"]
    for kind in ("invalid_id", "exact_repeat", "class_conflict", "split_conflict", "repeat_id"):
        assert [f.line for f in c.faults if f.kind == kind] == want[kind], kind
    assert [f.line for f in c.faults if f.kind == "late_start"] == want["late_start"]
    assert want["invalid_id"] and want["exact_repeat"] and want["class_conflict"]
    (bad,) = [f for f in c.faults if f.kind == "invalid_id"]
    assert bad.source_id == "n4DEfAKk0&t"
    kept = want["kept"]
    assert [s.source_id for s in c.sources] == kept["ytid"].tolist()
    assert [s.line for s in c.sources] == kept["line"].tolist()
    assert [s.start for s in c.sources] == kept["start_time"].astype(float).tolist()
    names = {"thunder": "thunderstorm", "explosion": "volcano eruption"}
    assert [s.class_name for s in c.sources] == [names.get(x, x) for x in kept["class"]]
    assert [s.split for s in c.sources] == kept["set"].tolist()
    # every row is accounted for: kept, or dropped with exactly one fault
    dropped = [f.line for f in c.faults if f.action == "dropped"]
    assert len(dropped) == len(set(dropped)) == c.rows - len(c.sources)


def test_fault_policy_on_a_small_list() -> None:
    text = "\n".join(
        [
            "ytid,start_time,class,set",
            "aaaaaaaaaa1,10,raining,train",
            "aaaaaaaaaa1,30,raining,test",  # both splits: test wins
            "aaaaaaaaaa1,50,raining,test",  # the id again in test: first test row kept
            "bbbbbbbbbb1,0,thunder,train",
            "bbbbbbbbbb1,0,thunder,train",  # exact repeat
            "cccccccccc1,0,thunder,train",  # two classes: both dropped
            "cccccccccc1,5,raining,train",
            "dddddddddd1,4000,explosion,test",  # late start, kept
            "eeeeeeeeee1,3,raining,dev",  # malformed split
            "eeeeeeeeee2,3,lava,train",  # other VGGSound class: skipped, not a fault
        ]
    )
    c = convert_landscape_list(text, "small.csv")
    assert [(s.source_id, s.class_name, s.start, s.split) for s in c.sources] == [
        ("aaaaaaaaaa1", "raining", 30.0, "test"),
        ("bbbbbbbbbb1", "thunderstorm", 0.0, "train"),
        ("dddddddddd1", "volcano eruption", 4000.0, "test"),
    ]
    assert [(f.line, f.kind, f.detail) for f in c.faults] == [
        (2, "split_conflict", "also in test on line 3"),
        (4, "repeat_id", "first on line 3 (start 30)"),
        (6, "exact_repeat", "same row as line 5"),
        (7, "class_conflict", "line 7: thunderstorm, line 8: raining"),
        (8, "class_conflict", "line 7: thunderstorm, line 8: raining"),
        (9, "late_start", "start 4000 s"),
        (10, "malformed", "split 'dev' is not train or test"),
    ]
    assert c.skipped["other_class"] == 1 and c.rows == 10


def test_default_source_list_uses_the_list_when_reachable(
    shared_list: Path, list_url: str, tmp_path: Path
) -> None:
    path, why = default_source_list(tmp_path, list_url, quiet=True)
    assert path == tmp_path / "landscape.csv"
    sources = read_source_list(path)
    assert len(sources) == len(expected_from_raw(shared_list)["kept"])
    assert why.startswith(f"the paper's list from {list_url} ({len(sources)} sources;")
    assert (tmp_path / LIST).read_bytes() == shared_list.read_bytes()
    faults = pd.read_csv(tmp_path / "landscape-faults.csv")
    assert list(faults.columns) == ["line", "source_id", "kind", "action", "detail"]
    assert f"{(faults['action'] == 'dropped').sum()} rows dropped" in why
    # Offline later: the list fetched before is reused, and the message says so.
    again, why = default_source_list(tmp_path, closed_port_url(), quiet=True)
    assert again == path and "fetched earlier" in why and "Connection refused" in why


def test_default_source_list_falls_back_offline(tmp_path: Path) -> None:
    url = closed_port_url()
    path, why = default_source_list(tmp_path / "work", url, quiet=True)
    assert path == tmp_path / "work" / "vggsounder.csv"
    assert path.read_bytes() == shipped_source_list("vggsounder.csv").read_bytes()
    count = len(read_source_list(path))
    assert why.startswith(f"the shipped VGGSounder pool ({count} sources), since the")
    assert f"cannot fetch {url}" in why
    assert not (tmp_path / "work" / "landscape.csv").exists()


def test_default_source_list_falls_back_on_a_page_that_is_no_list(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body>Sign in to continue</body></html>\n")
    with serve_folder(site) as base:
        path, why = default_source_list(tmp_path / "a", base + "index.html", quiet=True)
        assert path.name == "vggsounder.csv" and "holds no usable rows" in why
        path, why = default_source_list(tmp_path / "b", base + "missing.csv", quiet=True)
        assert path.name == "vggsounder.csv" and "File not found" in why
    with pytest.raises(FetchError, match="cannot fetch"):
        fetch_text("ftp-ish://nowhere")
