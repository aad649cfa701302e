"""Near-miss suggestions for mistyped class names and option values, across the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from landscape_av.classes import CLASSES, label_of, parse_class_selection
from landscape_av.cli import main
from landscape_av.near_miss import close_matches, did_you_mean


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("thunderstrom", "thunderstorm"),
        ("Wind_Noize", "wind noise"),
        ("waterfal burbling", "waterfall burbling"),
        ("under water bubbling", "underwater bubbling"),
    ],
)
def test_a_near_miss_names_the_class_meant(typed: str, meant: str) -> None:
    assert close_matches(typed, CLASSES)[0] == meant
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        parse_class_selection(f"raining,{typed}")
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        label_of(typed)


def test_a_name_near_nothing_gets_no_suggestion() -> None:
    assert did_you_mean("guitar", CLASSES) == ""
    with pytest.raises(ValueError) as err:
        parse_class_selection("guitar")
    assert "did you mean" not in str(err.value) and "expected 'all' or any of" in str(err.value)


def test_the_cli_suggests_classes_values_options_and_commands(tmp_path) -> None:
    runner = CliRunner()
    for args, said in [
        (["build", "--demo", "--dry-run", "--classes", "thunderstrom"], "'thunderstorm'"),
        (["build", "--demo", "--dry-run", "--engine", "rey"], "did you mean 'ray'?"),
        (["build", "--clases", "raining"], "--classes"),
        (["buidl"], "'build'"),
        (["export-frames", str(tmp_path), "--split", "tset"], "did you mean 'test'?"),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and said in result.output, (args, result.output)
