"""`python -m model.train_audio` on shards of the offline demo build: steps, logs, checkpoints,
resume, and the exported F_a."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from landscape_av.schema import shard_glob
from model import runtime
from model.clip import load_clip
from model.data import DataConfig, make_loader
from model.sound_clip import load_sound_clip
from model.train_audio import cli, main, train

TINY = ["--tiny", "--quiet", "--log-every", "1", "--save-every", "2"]


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training of tiny models: one torch thread (extra ones fight over busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.slow
def test_training_steps_log_finite_losses_and_resume(demo_corpus: Path, tmp_path: Path) -> None:
    shards = str(demo_corpus / shard_glob("train"))
    run = tmp_path / "run"
    assert main(["--shards", shards, "--out", str(run), "--steps", "3", *TINY]) == 0
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["step-00000002", "step-00000003"]
    first = load_sound_clip(run / "sound_clip")

    assert main(["--shards", shards, "--out", str(run), "--steps", "4", *TINY]) == 0  # from 3
    losses = _scalars(run, "sound_clip/total")
    assert [s for s, _ in losses] == [1, 2, 3, 4]
    assert all(math.isfinite(v) and v > 0 for _, v in losses)
    for tag in ("audio_text", "audio_image", "logit_scale"):
        assert len(_scalars(run, f"sound_clip/{tag}")) == 4
    resumed = load_sound_clip(run / "sound_clip")
    assert (
        resumed.cfg == first.cfg and resumed.cfg.embed_dim == load_clip(None, tiny=True).embed_dim
    )
    assert not torch.equal(resumed.stem.weight, first.stem.weight)  # the 4th step trained

    # the exported encoder embeds the corpus's sounds into the CLIP space
    cfg = DataConfig(frames=2, resolution=32, n_mels=32)
    batch = next(iter(make_loader(shards, cfg, batch_size=2, num_workers=0)))
    emb = resumed(batch["mel_full"])
    assert emb.shape == (2, resumed.cfg.embed_dim) and torch.isfinite(emb).all()


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in load_file(str(checkpoint / "model.safetensors")).items()}


@pytest.mark.slow
def test_resume_gives_the_uninterrupted_run(demo_corpus: Path, tmp_path: Path) -> None:
    """Both trainers resume alike: a run stopped after its step-2 checkpoint and resumed ends with
    the checkpoints and (to float rounding) the weights of the run that was not stopped."""
    shards = str(demo_corpus / shard_glob("train"))
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train(cli.settings(["--shards", shards, "--out", str(whole), "--steps", "4", *TINY]))
    train(cli.settings(["--shards", shards, "--out", str(broken), "--steps", "2", *TINY]))
    train(cli.settings(["--shards", shards, "--out", str(broken), "--steps", "4", *TINY]))
    names = [[p.name for p in runtime.Checkpointer(r).paths()] for r in (whole, broken)]
    assert names[0] == names[1] == ["step-00000002", "step-00000004"]
    a, b = (_weights(runtime.Checkpointer(r).latest()) for r in (whole, broken))
    assert a.keys() == b.keys()
    # equal to float rounding (the CPU ResNet's last bits vary after a reload, up to ~1e-7),
    # far below what one step moves (lr 1e-4: a fresh optimizer or other batches show there)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    step2 = _weights(runtime.Checkpointer(whole).paths()[0])
    assert max((a[k] - step2[k]).abs().max().item() for k in a) > 1e-5


def test_without_clip_weights_the_command_says_what_is_missing(tmp_path: Path, capsys) -> None:
    assert main(["--shards", "x.tar", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "--clip CKPT is required unless --tiny" in err and "pretrained='openai'" in err


def test_shards_that_do_not_exist_are_named(tmp_path: Path, capsys) -> None:
    assert main(["--shards", str(tmp_path / "none-*.tar"), "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: --shards: no shard matches") and "none-*.tar" in err
    assert len(err.splitlines()) == 1
