"""`sources check` and `build` judge a source list's rows by the same URL and time rules: a row
the build can never download is refused by both, on the same line, with the same message."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape_av.cli import main

HEADER = "source_id,url,class,start,end,split,license,attribution"
BAD = {
    "option": ("--exec=rm", "", "looks like a command-line option"),
    "ftp": ("ftp://example.org/a.mp4", "", "only http(s) URLs"),
    "search": ("ytsearch:rain sounds", "", "only http(s) URLs"),
    "local": ("file:///tmp/a.mp4", "", "is a local file"),
    "nohost": ("http:///a.mp4", "", "has no host"),
    "far": ("https://example.org/a.mp4", "1e18", "past 86400 s"),
    "ipv6": ("http://[::1/x", "", "not a valid URL"),
    "port_only": ("http://:80/x", "", "has no host"),
    "port_range": ("http://example.org:99999/x", "", "not a valid URL (Port out of range"),
    "port_zero": ("http://example.org:0/x", "", "port 0"),
    "space_host": ("http://exa mple.org/x", "", "holds a space"),
    "newline": ("http://example.org/a\nb.mp4", "", "control character"),
    "tab": ("http://example.org/\ta.mp4", "", "control character"),
}
GOOD = ["http://[::1]:8080/a.mp4", "https://example.org:443/a%20b.mp4", "http://example.org:/a"]


def error_lines(output: str, path: Path) -> set[str]:
    return {line.strip() for line in output.splitlines() if line.strip().startswith(str(path))}


@pytest.mark.parametrize("row", sorted(BAD))
def test_check_and_build_give_a_bad_row_the_same_verdict(row: str, tmp_path: Path):
    url, start, message = BAD[row]
    path = tmp_path / "sources.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows(
            [HEADER.split(","), ["ok", "https://example.org/ok.mp4", "raining", *[""] * 5]]
        )
        writer.writerow([row, url, "raining", start, "", "", "", ""])
    checked = CliRunner().invoke(main, ["sources", "check", str(path)])
    built = CliRunner().invoke(
        main, ["build", "--source-list", str(path), "--out", str(tmp_path / "out"), "--dry-run"]
    )
    assert checked.exit_code == built.exit_code == 1, checked.output
    assert "Traceback" not in checked.output + built.output
    lines = error_lines(checked.output, path)
    assert lines == error_lines(built.output, path)
    assert len(lines) == 1 and f"{path}:3:" in lines.pop() and message in checked.output


@pytest.mark.parametrize("url", GOOD)
def test_urls_that_yt_dlp_can_fetch_pass(url: str, tmp_path: Path):
    path = tmp_path / "sources.csv"
    path.write_text(f"{HEADER}\nok,{url},raining,,,,,\n")
    assert CliRunner().invoke(main, ["sources", "check", str(path)]).exit_code == 0


def test_local_files_pass_both_with_allow_local(tmp_path: Path):
    path = tmp_path / "sources.csv"
    path.write_text(f"{HEADER}\nlocal,file:///tmp/a.mp4,raining,,,,,\n")
    checked = CliRunner().invoke(main, ["sources", "check", str(path), "--allow-local"])
    args = ["build", "--source-list", str(path), "--dry-run", "--allow-local"]
    built = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert checked.exit_code == built.exit_code == 0, checked.output + built.output


def test_a_missing_source_list_is_one_line(tmp_path: Path):
    missing = tmp_path / "missing.csv"
    args = ["build", "--manifest", str(missing), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith(f"{missing}: cannot read it: No such file or directory")
    )
    assert "Traceback" not in result.output


CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]


@pytest.mark.slow  # two child processes each, which must not hang the suite if reading blocks
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_source_list_that_is_no_regular_file_is_refused_at_once(kind: str, tmp_path: Path):
    if kind == "fifo":
        path = tmp_path / "sources.csv"
        os.mkfifo(path)  # no writer: opening it for reading would block forever
    else:
        path = Path("/dev/zero")  # endless
    for command in (["sources", "check"], ["build", "--dry-run", "--source-list"]):
        proc = subprocess.run(
            [*CLI, *command, str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"{path}: is a" in proc.stderr and "not a regular file" in proc.stderr, proc.stderr


def test_a_source_list_over_the_bound_is_refused_unread(tmp_path: Path, monkeypatch):
    from landscape_av.sources import source_list

    monkeypatch.setattr(source_list, "MAX_LIST_BYTES", 1000)
    path = tmp_path / "sources.csv"
    rows = "".join(f"s{i},https://example.org/{i}.mp4,raining,,,,,\n" for i in range(40))
    path.write_text(f"{HEADER}\n{rows}")
    result = CliRunner().invoke(main, ["sources", "check", str(path)])
    assert result.exit_code == 1 and "larger than" in result.output, result.output
