"""Reading, validating, selecting and writing source lists (`landscape_av.sources.source_list`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape_av.classes import CLASSES
from landscape_av.sources.source_list import (
    SOURCE_COLUMNS,
    Source,
    SourceListError,
    read_source_list,
    select_sources,
    write_source_list,
)

HEADER = ",".join(SOURCE_COLUMNS)


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "sources.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(SourceListError) as info:
        read_source_list(path)
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
    assert a.label == CLASSES.index("waterfall burbling")
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
        f"{path}:3: unknown class 'mud'; expected one of: {', '.join(CLASSES)}",
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
