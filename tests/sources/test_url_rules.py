"""`sources check` and `build` judge a source list's rows by the same URL and time rules: a row
the build can never download is refused by both, on the same line, with the same message."""

from __future__ import annotations

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
}


def error_lines(output: str, path: Path) -> set[str]:
    return {line.strip() for line in output.splitlines() if line.strip().startswith(str(path))}


@pytest.mark.parametrize("row", sorted(BAD))
def test_check_and_build_give_a_bad_row_the_same_verdict(row: str, tmp_path: Path):
    url, start, message = BAD[row]
    path = tmp_path / "sources.csv"
    good = "ok,https://example.org/ok.mp4,raining,,,,,"
    path.write_text(f"{HEADER}\n{good}\n{row},{url},raining,{start},,,,\n")
    checked = CliRunner().invoke(main, ["sources", "check", str(path)])
    built = CliRunner().invoke(
        main, ["build", "--source-list", str(path), "--out", str(tmp_path / "out"), "--dry-run"]
    )
    assert checked.exit_code == built.exit_code == 1
    lines = error_lines(checked.output, path)
    assert lines == error_lines(built.output, path)
    assert len(lines) == 1 and f"{path}:3:" in lines.pop() and message in checked.output


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
