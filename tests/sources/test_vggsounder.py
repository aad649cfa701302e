"""The VGGSounder pool and VGGSound-style lists: class mapping, VGGSounder filters, fault policy."""

from __future__ import annotations

import csv
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

import pytest

from landscape_av.classes import CLASSES
from landscape_av.resources import shipped_source_list
from landscape_av.sources.source_list import read_source_list, write_source_list
from landscape_av.sources.vggsound import (
    VGGSOUNDER_FILE,
    convert_vggsounder,
    read_vggsounder_labels,
)

LABEL_HEADER = "video_id,label,modality,background_music,static_image,voice_over"

# A hand-made VGGSounder label file: one row per (clip, label), flags per clip.
LABELS = [
    "aaaaaaaaaa1_000030,thunder,AV,False,False,False",  # kept: thunderstorm
    "aaaaaaaaaa1_000030,male speech,AV,False,False,False",  # other class: ignored
    "aaaaaaaaaa2_000000,raining,A,False,False,False",  # audible only
    "aaaaaaaaaa3_000010,raining,V,False,False,False",  # visible only
    "aaaaaaaaaa4_000005,fire crackling,AV,True,False,False",  # background music
    "aaaaaaaaaa5_000005,fire crackling,AV,False,True,False",  # static image
    "aaaaaaaaaa6_000005,fire crackling,AV,False,False,True",  # voice-over
    "aaaaaaaaaa7_000020,splashing water,AV,False,False,False",  # two classes, both AV
    "aaaaaaaaaa7_000020,squishing water,AV,False,False,False",
    "aaaaaaaaaa8_000020,splashing water,AV,False,False,False",  # AV + an audible-only class:
    "aaaaaaaaaa8_000020,wind noise,A,False,False,False",  # no conflict after the filter
    "aaaaaaaaaa9_000000,volcano explosion,AV,false,false,false",  # kept: volcano eruption
    "aaaaaaaaaa9_000040,volcano explosion,AV,False,False,False",  # same video again: repeat_id
    "with-dash-_000001,raining,AV,False,False,False",  # 10-char id: invalid_id
]


def write_lines(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "labels.csv", LABEL_HEADER, LABELS)


def test_vggsounder_filters_and_policy(labels: Path) -> None:
    c = convert_vggsounder(labels)
    kept = [(s.source_id, s.class_name, s.start, s.split, s.line) for s in c.sources]
    assert kept == [
        ("aaaaaaaaaa1", "thunderstorm", 30.0, None, 2),
        ("aaaaaaaaaa8", "splashing water", 20.0, None, 11),
        ("aaaaaaaaaa9", "volcano eruption", 0.0, None, 13),
    ]
    assert c.rows == len(LABELS)
    assert c.skipped == Counter(
        other_class=1,
        not_audible_and_visible=3,
        background_music=1,
        static_image=1,
        voice_over=1,
    )
    faults = [(f.line, f.source_id, f.kind, f.action) for f in c.faults]
    assert faults == [
        (9, "aaaaaaaaaa7", "class_conflict", "dropped"),
        (10, "aaaaaaaaaa7", "class_conflict", "dropped"),
        (14, "aaaaaaaaaa9", "repeat_id", "dropped"),
        (15, "with-dash-", "invalid_id", "dropped"),
    ]
    assert c.faults[2].detail == "first on line 13 (start 0)"
    first = c.sources[0]
    assert first.url == "https://www.youtube.com/watch?v=aaaaaaaaaa1"
    assert first.license == "see source (YouTube)"
    assert "VGGSound (CC BY 4.0)" in first.attribution and "VGGSounder" in first.attribution


def test_full_vggsound_csv_is_filtered_where_annotated(labels: Path, tmp_path: Path) -> None:
    vggsound = tmp_path / "vggsound.csv"
    vggsound.write_text(
        "\n".join(
            [
                "aaaaaaaaaa1,30,thunder,test",  # annotated AV: kept
                "aaaaaaaaaa2,0,raining,test",  # annotated audible only: skipped
                "aaaaaaaaaa1,30,raining,test",  # VGGSounder lacks 'raining' for this clip
                "bbbbbbbbbb1,12,waterfall burbling,train",  # not annotated (train): kept as listed
                '"bbbbbbbbbb2",4,"bird chirping, tweeting",train',  # other class
                "bbbbbbbbbb3,x,raining,train",  # malformed start
                "bbbbbbbbbb4,4,raining",  # malformed: 3 fields
                "bbbbbbbbbb1,12,waterfall burbling,train",  # exact repeat
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    c = convert_vggsounder(labels, vggsound)
    assert [(s.source_id, s.class_name, s.split) for s in c.sources] == [
        ("aaaaaaaaaa1", "thunderstorm", "test"),
        ("bbbbbbbbbb1", "waterfall burbling", "train"),
    ]
    assert c.unannotated == 1  # bbbbbbbbbb1 (its exact repeat is dropped before the filter)
    assert c.skipped == Counter(not_audible_and_visible=1, not_confirmed=1, other_class=1)
    assert [(f.line, f.kind) for f in c.faults] == [
        (6, "malformed"),
        (7, "malformed"),
        (8, "exact_repeat"),
    ]
    assert c.faults[0].detail == "start 'x' is not seconds >= 0"
    assert c.name == str(vggsound)


def test_malformed_label_file_names_every_line(tmp_path: Path) -> None:
    bad = write_lines(
        tmp_path / "bad.csv",
        LABEL_HEADER,
        [
            "aaaaaaaaaa1_000030,thunder,AV,False,False,False",
            "aaaaaaaaaa2,raining,AV,False,False,False",
            "aaaaaaaaaa3_000001,raining,both,False,False,False",
            "aaaaaaaaaa4_000001,raining,AV,False,yes,False",
        ],
    )
    with pytest.raises(ValueError) as info:
        read_vggsounder_labels(bad)
    lines = str(info.value).splitlines()
    assert lines[0] == "3 malformed VGGSounder label rows:"
    assert lines[1].startswith(f"{bad}:3: video_id 'aaaaaaaaaa2' is not <ytid>_<start>")
    assert lines[2].startswith(f"{bad}:4: modality 'both'")
    assert lines[3].startswith(f"{bad}:5: a flag")
    wrong = write_lines(tmp_path / "wrong.csv", "ytid,start_time,class,set", ["a,1,raining,test"])
    with pytest.raises(ValueError, match=r"wrong.csv:1: not a VGGSounder label file"):
        read_vggsounder_labels(wrong)


def test_shipped_pool_is_valid_and_covers_every_class() -> None:
    sources = read_source_list(str(shipped_source_list("vggsounder.csv")))
    per_class = Counter(s.class_name for s in sources)
    assert set(per_class) == set(CLASSES)
    assert all(s.url == f"https://www.youtube.com/watch?v={s.source_id}" for s in sources)
    assert all(s.split is None and s.end is None for s in sources)
    assert Path(str(shipped_source_list("vggsounder.csv"))).stat().st_size < 300_000


def test_shipped_pool_regenerates_from_the_installed_package(tmp_path: Path) -> None:
    try:
        installed = version("vggsounder")
    except PackageNotFoundError:
        pytest.skip(
            "the vggsounder package is not installed (pip install 'landscape-av[vggsounder]')"
        )
    if installed != "1.0":
        pytest.skip(f"manifests/vggsounder.csv was made from vggsounder 1.0, not {installed}")
    c = convert_vggsounder()
    regenerated = write_source_list(c.sources, tmp_path / "vggsounder.csv")
    assert regenerated.read_bytes() == shipped_source_list("vggsounder.csv").read_bytes()
    # The filter as stated, checked on the package's label file directly: every kept clip's label
    # is AV and its clip has none of the three flags.
    label_file = files("vggsounder") / "data" / VGGSOUNDER_FILE
    with label_file.open(encoding="utf-8") as f:
        rows = {(r["video_id"], r["label"]): r for r in csv.DictReader(f)}
    names = {"thunderstorm": "thunder", "volcano eruption": "volcano explosion"}
    for s in c.sources:
        row = rows[f"{s.source_id}_{int(s.start):06d}", names.get(s.class_name, s.class_name)]
        assert row["modality"] == "AV"
        assert {row[k] for k in ("background_music", "static_image", "voice_over")} == {"False"}
