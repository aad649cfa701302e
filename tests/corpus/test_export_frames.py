"""`export-frames` writes the image dataset layout of StyleGAN3's dataset_tool.py."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from landscape_av.cli import main
from landscape_av.corpus.export_frames import image_name


def test_zip_in_dataset_tool_layout(demo_corpus: Path, manifests, tmp_path: Path) -> None:
    dest = tmp_path / "frames.zip"
    args = ["export-frames", str(demo_corpus), "--out", str(dest), "--resolution", "32"]
    result = CliRunner().invoke(main, [*args, "--frames-per-clip", "2", "-q"])
    assert result.exit_code == 0, result.output
    clips = manifests["clips"]
    train = clips[clips["split"] == "train"]
    with zipfile.ZipFile(dest) as z:
        labels = json.loads(z.read("dataset.json"))["labels"]
        assert len(labels) == 2 * len(train)
        assert [name for name, _ in labels] == [image_name(i) for i in range(len(labels))]
        assert labels[0][0] == "00000/img00000000.png"
        assert [label for _, label in labels] == [int(x) for x in train["label"] for _ in (0, 1)]
        assert sorted(z.namelist()) == sorted([n for n, _ in labels] + ["dataset.json"])
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        img = Image.open(io.BytesIO(z.read(labels[-1][0])))
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))
        first, second = (Image.open(io.BytesIO(z.read(n))) for n, _ in labels[:2])
        assert first.tobytes() != second.tobytes()  # two different moments of the clip


def test_folder_equals_zip_and_is_reproducible(demo_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    opts = ["--resolution", "16", "--max-images", "5", "-q"]
    for dest in ("a.zip", "b.zip", "folder"):
        result = runner.invoke(
            main, ["export-frames", str(demo_corpus), "--out", str(tmp_path / dest), *opts]
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        for name in z.namelist():
            assert (tmp_path / "folder" / name).read_bytes() == z.read(name)
    assert len(list((tmp_path / "folder").rglob("*.png"))) == 5


def test_bad_options_are_refused(demo_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["export-frames", str(demo_corpus), "--out"]
    result = runner.invoke(main, [*base, str(tmp_path / "x.zip"), "--resolution", "100"])
    assert result.exit_code != 0 and "power of two" in result.output
    assert not (tmp_path / "x.zip").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.png").write_bytes(b"")
    result = runner.invoke(main, [*base, str(tmp_path / "full")])
    assert result.exit_code != 0 and "not empty" in result.output
