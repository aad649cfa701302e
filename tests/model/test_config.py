"""`model.config`: settings from defaults, presets, --config, flags and --set, typed by the config
dataclass; expected errors as one line with the exit code that says what went wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from model.config import Flag, InputError, Preset, UsageError, command, run
from model.train import TrainConfig, build_config


@dataclass
class Inner:
    rate: float = 0.5
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.9, 0.99)


@dataclass
class Settings:
    name: str = "run"
    steps: int = 10
    quiet: bool = False
    limit: float | None = None
    path: str | None = None
    device: str = "auto"
    inner: Inner = field(default_factory=Inner)


SEEN: list[Settings] = []


@command(
    "demo",
    Settings,
    [
        Flag("name", "A name."),
        Flag("steps", "Steps.", old=("--n-steps",)),
        Flag("quiet", "Quiet."),
        Flag("inner.rate", "A rate."),
        Flag("device", "Where.", choices=("auto", "cpu")),
        Flag("path", "A file.", exists=True),
    ],
    {"small": Preset("Small.", {"steps": 2, "inner": {"sizes": [3]}})},
)
def demo(cfg: Settings) -> None:
    """A demo command."""
    SEEN.append(cfg)
    if cfg.name == "input":
        raise InputError("the input is bad")
    if cfg.name == "missing":
        open(cfg.name)  # noqa: SIM115 - a FileNotFoundError from deep inside
    if cfg.name == "bug":
        raise RuntimeError("a bug")


def test_set_is_typed_by_the_dataclass_fields():
    cfg = demo.settings(
        ["--set", "steps=3", "--set", "inner.rate=1e-4", "--set", "quiet=true"]
        + ["--set", "limit=2", "--set", "name=007", "--set", "inner.sizes=[4, 5]"]
        + ["--set", "inner.pair=[0, 1]", "--set", "path=null"]
    )
    assert cfg.steps == 3 and cfg.inner.rate == 1e-4 and cfg.quiet is True
    assert cfg.limit == 2.0 and isinstance(cfg.limit, float)
    assert cfg.name == "007"  # a text field keeps the text as typed
    assert cfg.inner.sizes == (4, 5) and cfg.inner.pair == (0.0, 1.0)
    assert cfg.path is None  # null unsets an optional text field, and is text in any other
    assert demo.settings(["--set", "name=null"]).name == "null"
    assert demo.settings(["--set", "limit=null"]).limit is None


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("steps=ten", "--set steps=ten: steps expects an integer, got 'ten'"),
        ("steps=1.5", "--set steps=1.5: steps expects an integer, got 1.5"),
        ("quiet=maybe", "--set quiet=maybe: quiet expects true or false, got 'maybe'"),
        ("limit=fast", "--set limit=fast: limit expects a number or null, got 'fast'"),
        ("inner.pair=[1]", "--set inner.pair=[1]: inner.pair expects a list of 2, got [1]"),
        ("inner.rte=1", "--set inner.rte=1: unknown setting 'inner.rte' (known: inner.rate, "),
        ("inner=1", "--set inner=1: 'inner' is a section; set inner.NAME=VALUE"),
        ("steps.x=1", "--set steps.x=1: steps expects an integer, got {'x': 1}"),
        ("steps", "--set 'steps': expected key.sub=value"),
        ("device=gpu", "device: 'gpu' is not one of auto, cpu"),
    ],
)
def test_a_bad_setting_is_one_line_naming_key_and_value(assignment, message, capsys):
    with pytest.raises(UsageError) as e:
        demo.settings(["--set", assignment])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert run(demo, ["--set", assignment]) == 2
    assert capsys.readouterr().err.splitlines() == [f"Error: {e.value}"]


def test_sources_in_order_preset_file_flags_set(tmp_path):
    conf = tmp_path / "run.yaml"
    conf.write_text("steps: 7\nname: from-file\ninner:\n  rate: 1e-3\n")
    cfg = demo.settings(["--small", "--config", str(conf)])
    assert (cfg.steps, cfg.name, cfg.inner.rate, cfg.inner.sizes) == (7, "from-file", 1e-3, (3,))
    cfg = demo.settings(["--small", "--config", str(conf), "--steps", "8", "--set", "name=x"])
    assert (cfg.steps, cfg.name) == (8, "x")
    assert demo.settings(["--steps", "8", "--set", "steps=9"]).steps == 9
    assert demo.settings(["--n-steps", "4"]).steps == 4  # an old spelling
    conf = tmp_path / "run.json"
    conf.write_text(json.dumps({"inner": {"sizes": [6, 7]}, "quiet": True}))
    cfg = demo.settings(["--config", str(conf)])
    assert cfg.inner.sizes == (6, 7) and cfg.quiet is True


def test_bad_config_files_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1\n")
    with pytest.raises(UsageError, match=r"^--config .*bad.yaml: not YAML or JSON"):
        demo.settings(["--config", str(bad)])
    bad.write_text("- 1\n")
    with pytest.raises(UsageError, match=r"expected a mapping of settings"):
        demo.settings(["--config", str(bad)])
    with pytest.raises(UsageError, match=r"^--config .*absent.yaml: "):
        demo.settings(["--config", str(tmp_path / "absent.yaml")])
    bad.write_text("inner:\n  rat: 1\n")
    with pytest.raises(UsageError, match=r"bad.yaml: unknown setting 'inner.rat'"):
        demo.settings(["--config", str(bad)])


def test_exit_codes_and_one_line_errors(tmp_path, capsys):
    SEEN.clear()
    assert run(demo, ["--name", "ok"]) == 0 and SEEN[-1].name == "ok"
    assert run(demo, ["--name", "input"]) == 2
    assert capsys.readouterr().err == "Error: the input is bad\n"
    assert run(demo, ["--name", "missing"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "Error: [Errno 2] No such file or directory: 'missing'"
    ]
    assert run(demo, ["--path", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"Error: --path {tmp_path / 'nope'}: no such file or folder\n"
    with pytest.raises(RuntimeError, match="a bug"):  # not an input error: a traceback
        run(demo, ["--name", "bug"])
    assert run(demo, ["--help"]) == 0
    shown = capsys.readouterr().out
    assert "--steps" in shown and "--n-steps" not in shown and "--small" in shown


def test_every_train_config_field_is_reachable_by_set():
    """New fields need no flag: --set and --config reach every (nested) field."""

    def leaves(obj, prefix=""):
        for name, value in vars(obj).items():
            if hasattr(value, "__dataclass_fields__"):
                yield from leaves(value, f"{prefix}{name}.")
            else:
                yield prefix + name, value

    for key, value in leaves(TrainConfig()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            cfg = build_config(["--shards", "s", "--set", f"{key}={value + 1}"])
            got = cfg
            for part in key.split("."):
                got = getattr(got, part)
            assert got == value + 1, key
