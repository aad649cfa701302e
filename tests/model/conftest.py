"""Fixtures of the model tests."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from model import runtime
from model.train import Trainer, build_config, load_frozen


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained run (step 0 checkpoint of `model.train --tiny`): generation needs no data."""
    run = tmp_path_factory.mktemp("gen") / "run"
    cfg = build_config(["--tiny", "--shards", "unused.tar", "--out", str(run)])
    rt = runtime.setup("cpu", seed=0)
    trainer = Trainer(cfg, rt, load_frozen(cfg, rt.device))
    trainer.save(runtime.Checkpointer(run), 0)
    return run


@pytest.fixture(scope="session")
def photo(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 960x540 landscape photo (JPEG): the first frame of a nature video."""
    path = tmp_path_factory.mktemp("photo") / "flower.jpg"
    with av.open(str(shared_media / "video_nature__mdn-interactive-examples__flower.mp4")) as c:
        next(c.decode(video=0)).to_image().save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def thunder(shared_media: Path) -> Path:
    """A real 7 s thunderstorm recording (Ogg Vorbis)."""
    return shared_media / "thunderstorm__redeclipse-sounds__morph-stormrain.ogg"
