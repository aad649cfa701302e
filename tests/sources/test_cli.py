"""`landscape-av sources landscape|vggsounder|check`: outputs, messages and exit codes."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.sources.serve import serve_folder
from landscape_av.sources.source_list import SOURCE_COLUMNS, read_source_list

WIDE = {"COLUMNS": "200"}


def run(*args: str):
    return CliRunner().invoke(main, list(args), env=WIDE)


def test_landscape_command_over_loopback(shared_dir: Path, tmp_path: Path) -> None:
    folder = shared_dir / "manifests"
    if not (folder / "landscape-tempotokens.csv").is_file():
        pytest.skip(f"{folder / 'landscape-tempotokens.csv'} is absent")
    out, report = tmp_path / "landscape.csv", tmp_path / "faults.csv"
    with serve_folder(folder) as base:
        url = base + "landscape-tempotokens.csv"
        result = run(
            "sources", "landscape", "--url", url, "--out", str(out), "--report", str(report)
        )
    assert result.exit_code == 0, result.output
    sources = read_source_list(out)
    faults = pd.read_csv(report)
    assert f"{url}: 1178 rows -> {len(sources)} sources" in result.output
    assert f"Wrote {len(sources)} sources to {out}" in result.output
    assert f"Wrote {len(faults)} faults to {report}" in result.output
    # every fault is printed with its line
    row = faults[faults["kind"] == "invalid_id"].iloc[0]
    assert row["source_id"] == "n4DEfAKk0&t"
    assert f"│ {row['line']} " in result.output and "n4DEfAKk0&t" in result.output
    printed = re.findall(r"│ exact_repeat +│ dropped +│", result.output)
    assert len(printed) == (faults["kind"] == "exact_repeat").sum() > 0


def test_landscape_command_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/landscape.csv"
    result = run("sources", "landscape", "--url", url, "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert f"Error: cannot fetch {url}: [Errno 111] Connection refused" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_vggsounder_command_and_check(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "video_id,label,modality,background_music,static_image,voice_over\n"
        "aaaaaaaaaa1_000030,raining,AV,False,False,False\n"
        "aaaaaaaaaa2_000030,raining,AV,False,False,True\n"
    )
    out = tmp_path / "pool.csv"
    result = run("sources", "vggsounder", "--labels", str(labels), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "1 VGGSounder: voice-over" in result.output
    assert out.read_text().splitlines()[0] == ",".join(SOURCE_COLUMNS)
    assert [s.source_id for s in read_source_list(out)] == ["aaaaaaaaaa1"]

    for group in ("sources", "manifest"):  # `manifest`: the group's old name, still accepted
        result = run(group, "check", str(out))
        assert result.exit_code == 0, result.output
        assert f"{out}: 1 sources" in result.output
        assert "│ raining             │ 0     │ 0    │ 1          │ 1     │" in result.output
    commands = re.findall(r"^  (\S+)", run("--help").output, re.M)
    assert "sources" in commands and "manifest" not in commands  # the old name is hidden

    result = run("sources", "vggsounder", "--labels", str(out), "--out", str(tmp_path / "y.csv"))
    assert result.exit_code == 1
    assert "not a VGGSounder label file (no column video_id, label, modality" in result.output


def test_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        ",".join(SOURCE_COLUMNS) + "\n"
        "a1,https://x,raining,,,,,\n"
        "a1,https://x,rain,,,,,\n"
        "a2,https://x,raining,9,3,dev,,\n"
    )
    result = run("sources", "check", str(bad))
    assert result.exit_code == 1
    assert "Error: 4 errors in source list:" in result.output
    for message in (
        f"{bad}:3: duplicate source_id 'a1' (first on line 2)",
        f"{bad}:3: unknown class 'rain'",
        f"{bad}:4: end '3' must be after start '9'",
        f"{bad}:4: split 'dev' must be empty or one of: train, test",
    ):
        assert message in result.output


def test_bad_flags_get_click_errors(tmp_path: Path) -> None:
    result = run("sources", "check", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "does not exist" in result.output
    result = run("sources", "landscape", "--timeout", "0")
    assert result.exit_code == 2 and "Invalid value for '--timeout'" in result.output
    result = run("sources", "vggsounder", "--vggsound-csv", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output
    result = run("sources", "frobnicate")
    assert result.exit_code == 2 and "No such command 'frobnicate'" in result.output


def test_vggsound_command_keeps_vggsound_classes(tmp_path: Path) -> None:
    vggsound = tmp_path / "vggsound.csv"  # VGGSound's own layout: no header
    vggsound.write_text(
        "aaaaaaaaaa1,30,dog barking,train\n"
        'aaaaaaaaaa2,0,"male speech, man speaking",train\n'
        "aaaaaaaaaa3,10,raining,test\n"
        "aaaaaaaaaa4,10,,train\n"
        "aaaaaaaaaa5,20,playing acoustic guitar,test\n"
    )
    out = tmp_path / "list.csv"
    result = run("sources", "vggsound", str(vggsound), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "5 rows -> 4 sources" in result.output and "1 malformed" in result.output
    sources = read_source_list(out, any_class=True)
    assert [(s.source_id, s.class_name, s.start, s.end, s.split) for s in sources] == [
        ("aaaaaaaaaa1", "dog barking", 30.0, 40.0, "train"),  # the labelled 10 s clip
        ("aaaaaaaaaa2", "male speech, man speaking", 0.0, 10.0, "train"),
        ("aaaaaaaaaa3", "raining", 10.0, 20.0, "test"),
        ("aaaaaaaaaa5", "playing acoustic guitar", 20.0, 30.0, "test"),
    ]
    assert run("sources", "check", str(out)).exit_code == 1  # other classes need --any-class
    result = run("sources", "check", str(out), "--any-class")
    assert result.exit_code == 0 and "playing acoustic guitar" in result.output, result.output

    some = "male speech, man speaking,dog_barking"
    result = run("sources", "vggsound", str(vggsound), "--classes", some, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [s.class_name for s in read_source_list(out, any_class=True)] == [
        "dog barking",
        "male speech, man speaking",
    ]
    result = run("sources", "vggsound", str(vggsound), "--classes", "dog barkin")
    assert result.exit_code == 2 and "unknown class(es) 'dog barkin'" in result.output
