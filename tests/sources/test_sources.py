"""Reading, validating, selecting and writing source lists (`landscape_av.sources.source_list`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape_av.classes import CLASSES, class_vocabulary, parse_class_selection
from landscape_av.sources.source_list import (
    SOURCE_COLUMNS,
    Source,
    SourceListError,
    label_sources,
    read_source_list,
    select_sources,
    write_source_list,
)

HEADER = ",".join(SOURCE_COLUMNS)


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "sources.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def errors_of(path: Path, any_class: bool = False) -> list[str]:
    with pytest.raises(SourceListError) as info:
        read_source_list(path, any_class=any_class)
    assert str(info.value).startswith(f"{len(info.value.errors)} error")
    return info.value.errors


def test_reads_valid_rows_with_empty_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "abc_DEF-123,https://example.org/a.mp4,waterfall burbling,12.5,40,train,CC BY 4.0,Ann",
        'xyz,https://example.org/b.mp4,thunderstorm,,,,"see source, YouTube",',
        "",  # blank lines are ignored
    )
    a, b = read_source_list(path)
    assert a == Source(
        "abc_DEF-123",
        "https://example.org/a.mp4",
        "waterfall burbling",
        12.5,
        40.0,
        "train",
        "CC BY 4.0",
        "Ann",
        str(path),
        2,
    )
    assert a.label is None  # a label indexes a build's classes: `label_sources` sets it
    assert label_sources([a], CLASSES)[0].label == CLASSES.index("waterfall burbling")
    assert (b.start, b.end, b.split, b.license, b.line) == (
        None,
        None,
        None,
        "see source, YouTube",
        3,
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a1,http://h/u,lava flow,,,,,", "unknown class 'lava flow'"),
        ("a1,http://h/u,waterfall_burbling,,,,,", "(did you mean 'waterfall burbling'?)"),
        ("a1,http://h/u,raining,soon,,,,", "start 'soon' is not a number of seconds"),
        ("a1,http://h/u,raining,-3,,,,", "start '-3' must be a finite number of seconds >= 0"),
        ("a1,http://h/u,raining,,nan,,,", "end 'nan' must be a finite number"),
        ("a1,http://h/u,raining,30,30,,,", "end '30' must be after start '30'"),
        ("a1,http://h/u,raining,,,val,,", "split 'val' must be empty or one of: train, test"),
        ("a.1,http://h/u,raining,,,,,", "source_id 'a.1' must be 1-64 characters"),
        (",http://h/u,raining,,,,,", "missing source_id"),
        ("a1,,raining,,,,,", "missing url"),
        ("a1,http://h/u,raining,,,", "6 fields; expected 8"),
    ],
)
def test_each_error_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "ok,http://h/u,raining,,,,,", row)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:3: ")
    assert message in error


def test_all_errors_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a1,http://h/u,raining,,,,,",
        "a2,http://h/u,mud,,,,,",
        "a1,http://h/u,raining,,,,,",
        "a3,,raining,5,2,,,",
    )
    errors = errors_of(path)
    assert errors == [
        f"{path}:3: unknown class 'mud'; expected one of: {', '.join(CLASSES)} (or pass "
        "any_class, --any-class, to keep classes outside the nine, as in a VGGSound list)",
        f"{path}:4: duplicate source_id 'a1' (first on line 2)",
        f"{path}:5: missing url",
        f"{path}:5: end '2' must be after start '5'",
    ]


def test_bad_header_and_empty_files(tmp_path: Path) -> None:
    (error,) = errors_of(
        write(tmp_path, "a1,http://h/u,raining,,,,,", header="ytid,start_time,class,set")
    )
    assert ":1: header is 'ytid,start_time,class,set'; expected 'source_id,url," in error
    (error,) = errors_of(write(tmp_path))
    assert error.endswith("no sources (only a header)")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "empty file" in errors_of(empty)[0]
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8 text" in errors_of(binary)[0]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    sources = [
        Source("a1", "https://x/a", "raining", 180.0, None, "test", "l, with comma", 'say "hi"'),
        Source("b2", "https://x/b", "fire crackling", 0.25, 30900.0, None, "", ""),
    ]
    path = write_source_list(sources, tmp_path / "sub" / "m.csv")
    assert path.read_text().splitlines()[1:] == [
        'a1,https://x/a,raining,180,,test,"l, with comma","say ""hi"""',
        "b2,https://x/b,fire crackling,0.25,30900,,,",
    ]
    back = read_source_list(path)
    assert [(s.source_id, s.start, s.end, s.split, s.license, s.attribution) for s in back] == [
        (s.source_id, s.start, s.end, s.split, s.license, s.attribution) for s in sources
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.csv"]  # no temporary left over


def _pool() -> list[Source]:
    """12 sources: 6 raining, 4 thunderstorm, 2 wind noise, interleaved in list order."""
    names = ["raining"] * 6 + ["thunderstorm"] * 4 + ["wind noise"] * 2
    order = [0, 6, 1, 2, 10, 7, 3, 4, 8, 11, 5, 9]
    return [Source(f"s{i:02d}", "u", names[i], line=n + 2) for n, i in enumerate(order)]


def test_select_by_class_cap_and_limit() -> None:
    pool = _pool()
    ids = lambda rows: [s.source_id for s in rows]  # noqa: E731
    assert select_sources(pool, CLASSES) == pool
    assert ids(select_sources(pool, ["wind noise"])) == ["s10", "s11"]
    capped = select_sources(pool, CLASSES, max_per_class=1)
    assert ids(capped) == ["s00", "s06", "s10"]  # first of each class, in list order
    # A limit takes classes in turn (label order: thunderstorm, wind noise, raining), depth by depth.
    limited = select_sources(pool, CLASSES, limit=5)
    assert sorted(s.class_name for s in limited) == sorted(
        ["thunderstorm", "thunderstorm", "wind noise", "wind noise", "raining"]
    )
    assert ids(limited) == ["s00", "s06", "s10", "s07", "s11"]
    assert select_sources(pool, CLASSES, limit=5) == limited  # deterministic
    both = select_sources(pool, ["raining", "thunderstorm"], limit=3, max_per_class=1)
    assert ids(both) == ["s00", "s06"]
    assert len(select_sources(pool, CLASSES, limit=100)) == len(pool)


def test_select_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown class 'lava'"):
        select_sources(_pool(), ["lava"])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        select_sources(_pool(), CLASSES, limit=0)
    with pytest.raises(ValueError, match="max_per_class must be at least 1"):
        select_sources(_pool(), CLASSES, max_per_class=-2)


def test_any_class_keeps_other_classes_and_still_catches_typos(tmp_path: Path) -> None:
    rows = ["a1,http://h/u,dog barking,,,,,", 'a2,http://h/u,"male speech, man speaking",,,,,']
    path = write(tmp_path, *rows, "a3,http://h/u,raining,,,,,")
    first, second = errors_of(path)  # without any_class the nine are all there is
    assert first.startswith(f"{path}:2: unknown class 'dog barking'") and "--any-class" in first
    assert second.startswith(f"{path}:3: unknown class 'male speech, man speaking'")
    sources = read_source_list(path, any_class=True)
    assert [s.class_name for s in sources] == [
        "dog barking",
        "male speech, man speaking",
        "raining",
    ]

    typos = write(
        tmp_path,
        "b1,http://h/u,dog barking,,,,,",
        "b2,http://h/u,Raining,,,,,",  # one of the nine, miswritten
        "b3,http://h/u,Dog_Barking,,,,,",  # an earlier row's class, miswritten
        "b4,http://h/u,,,,,,",
    )
    assert errors_of(typos, any_class=True) == [
        f"{typos}:3: unknown class 'Raining' (did you mean 'raining'?)",
        f"{typos}:4: class 'Dog_Barking' is 'dog barking' (line 2) written another way",
        f"{typos}:5: missing class",
    ]


def test_class_vocabulary_keeps_landscape_labels_and_sorts_others() -> None:
    assert class_vocabulary(["raining", "thunderstorm"]) == CLASSES  # labels never move
    assert class_vocabulary([]) == CLASSES
    assert class_vocabulary(["raining", "dog barking", "cat purring", "dog barking"]) == (
        "cat purring",
        "dog barking",
        "raining",
    )
    pool = [Source("a", "u", "raining"), Source("b", "u", "dog barking")]
    labelled = label_sources(pool, class_vocabulary(s.class_name for s in pool))
    assert [s.label for s in labelled] == [1, 0]
    with pytest.raises(ValueError, match="'dog barking' of 'b' is not in the build's classes"):
        label_sources(pool, CLASSES)


def test_class_selection_among_a_vocabulary() -> None:
    vocab = ("cat purring", "dog barking", "male speech, man speaking")
    assert parse_class_selection("all", vocab) == vocab
    assert parse_class_selection("male speech, man speaking,cat_purring", vocab) == (
        "cat purring",
        "male speech, man speaking",
    )
    with pytest.raises(ValueError, match="unknown class.*'raining'"):
        parse_class_selection("raining", vocab)
    assert parse_class_selection("all") == CLASSES
    pool = [Source(f"s{i}", "u", name) for i, name in enumerate(["dog barking", "cat purring"] * 3)]
    # a limit takes classes in turn in the vocabulary's (sorted) order
    chosen = select_sources(pool, ["dog barking", "cat purring"], limit=3)
    assert [s.source_id for s in chosen] == ["s0", "s1", "s3"]
