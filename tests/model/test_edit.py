"""Sound-guided editing (`python -m model.edit`): level mixing, strength, CLIP guidance, style mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model import runtime
from model.apps.checkpoint import open_checkpoint
from model.apps.edits import edit_latent
from model.apps.guidance import guide
from model.apps.options import EditOptions, PhotoOptions
from model.apps.photos import mean_latent
from model.edit import EditConfig as Config
from model.edit import main, run_edit
from model.stylegan3 import save_generator
from model.styles import ALL_LEVELS, GROUP_NAMES, style_groups

RT = runtime.Runtime(torch.device("cpu"))
QUIET = PhotoOptions(steps=8, lr=0.05, quiet=True)


@pytest.fixture(scope="module")
def run(run_dir):
    return open_checkpoint(run_dir, torch.device("cpu"))


@pytest.fixture(scope="module")
def w_photo(run) -> torch.Tensor:
    """A latent that is not the mean at any layer."""
    gen = torch.Generator().manual_seed(3)
    return mean_latent(run.G) + 0.3 * torch.randn(1, run.G.num_ws, run.G.w_dim, generator=gen)


def _changed_groups(w0: torch.Tensor, w1: torch.Tensor) -> set[str]:
    """Names of the style groups whose ws differ at all (the others are bit-identical)."""
    groups = zip(GROUP_NAMES, style_groups(w0.shape[1]), strict=True)
    return {name for name, g in groups if not torch.equal(w0[:, g], w1[:, g])}


@pytest.mark.parametrize("levels", ["coarse", "mid", "fine", "coarse,fine"])
def test_sound_mixing_changes_only_the_chosen_levels(run, w_photo, thunder, levels):
    w1, _ = edit_latent(run, w_photo, EditOptions(levels, audio=str(thunder)), QUIET, RT)
    assert _changed_groups(w_photo, w1) == set(levels.split(","))


def test_strength_zero_returns_the_original_exactly(run_dir, w_photo, thunder, tmp_path):
    torch.save(w_photo[0], tmp_path / "photo.pt")
    results = {}
    for strength in (0.0, 1.0):
        cfg = Config(str(run_dir), str(tmp_path / "photo.pt"), str(tmp_path / f"{strength}.png"))
        cfg.edit, cfg.photo, cfg.device = (
            EditOptions(audio=str(thunder), strength=strength),
            QUIET,
            "cpu",
        )
        results[strength] = run_edit(cfg)
    same = results[0.0]
    assert torch.equal(same.w_after, same.w_before) and torch.equal(same.after, same.before)
    strip = np.asarray(Image.open(same.path))  # before | after, 16 px each
    assert strip.shape == (16, 32, 3) and np.array_equal(strip[:, :16], strip[:, 16:])
    assert not torch.equal(results[1.0].after, results[1.0].before)


def test_style_mixing_from_a_seed_copies_the_chosen_levels(run, w_photo):
    w1, _ = edit_latent(run, w_photo, EditOptions("fine", style_from="7"), QUIET, RT)
    seed7, _ = edit_latent(run, w_photo, EditOptions(ALL_LEVELS, style_from="7"), QUIET, RT)
    assert _changed_groups(w_photo, w1) == {"fine"}
    fine = style_groups(run.G.num_ws)[2]
    assert torch.equal(w1[:, fine], seed7[:, fine]) and not torch.equal(seed7, w_photo)


@pytest.mark.slow
def test_optimize_moves_toward_the_sound_and_the_anchor_bounds_the_drift(run, w_photo, thunder):
    """Lee et al.'s latent optimisation: cos(CLIP(G(w)), F_a(sound)) rises; fine levels only; a
    heavier anchor keeps w nearer, within anchor * drift^2 <= 2 (the most cosine can gain)."""
    target = run.sound_clip()(run.mel(thunder)).float()
    drifts = {}
    for anchor in (0.008, 2.0):
        g = guide(run.G, run.clip(), w_photo, {"sound": (target, 1.0)}, ("fine",), 8, 0.05, anchor)
        sims = g.similarity["sound"]
        assert len(sims) == 9 and sims[-1] > sims[0], sims
        assert _changed_groups(w_photo, g.w) == {"fine"}
        assert anchor * g.drift**2 <= 2
        drifts[anchor] = g.drift
    assert drifts[2.0] < drifts[0.008]


@pytest.mark.slow
def test_text_guidance_raises_similarity_to_the_prompt(run, w_photo):
    opts = EditOptions("mid,fine", text="a thunderstorm at night", text_weight=1.0)
    w1, g = edit_latent(run, w_photo, opts, QUIET, RT)
    sims = g.similarity["text"]
    assert (
        sims[-1] > sims[0] + 0.01
        and sum(b > a for a, b in zip(sims[:-1], sims[1:], strict=True)) >= 6
    ), sims
    assert _changed_groups(w_photo, w1) == {"mid", "fine"}


def test_cli_writes_a_photo_before_after_strip(run_dir, photo, thunder, tmp_path, capsys):
    out = tmp_path / "edited.png"
    code = main(["--checkpoint", str(run_dir), "--image", str(photo), "--audio", str(thunder)]
                + ["--out", str(out), "--levels", "fine", "--steps", "2", "--device", "cpu", "--quiet"])  # fmt: skip
    assert code == 0
    said = capsys.readouterr().out
    assert "centre-cropped to 540x540" in said and "photo | before | after at levels fine" in said
    assert Image.open(out).size == (48, 16)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--levels", "fine,texture"], "--levels 'fine,texture': use names from coarse, mid, fine"),
        ([], "nothing to edit: give --audio, --text or --style-from"),
        (["--style-from", "sky.jpg"], "--style-from sky.jpg: neither a file nor an integer seed"),
    ],
)
def test_cli_errors_are_one_line(run_dir, w_photo, tmp_path, capsys, extra, message):
    """Wrong settings are usage errors (exit 2), one line each."""
    torch.save(w_photo[0], tmp_path / "w.pt")
    base = ["--checkpoint", str(run_dir), "--image", str(tmp_path / "w.pt")]
    if extra[:1] == ["--levels"]:
        extra = [*extra, "--style-from", "1"]
    assert main([*base, "--out", str(tmp_path / "o.png"), "--device", "cpu", *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"Error: {message}"]


def test_mixing_needs_a_checkpoint_with_the_sound_encoder(run, thunder, tmp_path, capsys):
    bare = save_generator(run.G, tmp_path / "G.safetensors")
    torch.save(mean_latent(run.G)[0], tmp_path / "w.pt")
    code = main(["--checkpoint", str(bare), "--image", str(tmp_path / "w.pt"), "--audio", str(thunder)]
                + ["--out", str(tmp_path / "o.png"), "--device", "cpu"])  # fmt: skip
    assert code == 2  # a known input error: one line, exit 2 (issue 10)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: {bare}: a bare generator without the sound-inversion encoder E_a; "
                   "pass a run folder written by model.train"]  # fmt: skip
