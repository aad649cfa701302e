"""Photo -> W+ inversion (`python -m model.invert`), LPIPS, and `model.generate --image photo.jpg`."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from PIL import Image

from model.apps.photos import invert_image, load_image, mean_latent
from model.config import InputError
from model.invert import main
from model.perceptual import Lpips, load_vgg_lpips, tiny_lpips
from model.stylegan3 import Generator, save_generator
from model.train import TINY_GENERATOR

MSE_FACTOR = 10
"""Inverting an image the generator made must bring the MSE at least this far below the mean
latent's."""


def tiny_generator() -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Generator(**TINY_GENERATOR).eval().requires_grad_(False)


def _check_inversion(G: Generator, w_true: torch.Tensor, steps: int, lr: float) -> None:
    with torch.no_grad():
        target = G.synthesis(w_true)
    inv = invert_image(G, target, mean_latent(G), steps, lr, tiny_lpips(), 1.0)
    assert inv.mse * MSE_FACTOR < inv.mse_start, (inv.mse_start, inv.mse)
    assert inv.losses[-1] < 0.1 * inv.losses[0]  # the loss falls
    assert min(inv.losses[: steps // 2]) > min(inv.losses[steps // 2 :])  # and keeps falling
    torch.testing.assert_close(G.synthesis(inv.w), inv.image)


@pytest.mark.slow
def test_inverting_a_tiny_generators_image():
    G = tiny_generator()
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1))
    _check_inversion(G, G.mapping(z, None, truncation_psi=0.7), steps=20, lr=0.1)


@pytest.mark.slow
def test_inverting_an_official_stylegan3_t_image(shared_dir):
    """The 64x64 StyleGAN3-T test network of NVIDIA's code, on one of its own W+ codes."""
    d = torch.load(shared_dir / "fixtures" / "stylegan3" / "t64.pt", weights_only=True)
    G = Generator(**json.loads(d["init_kwargs"])).eval().requires_grad_(False)
    G.load_state_dict(d["state_dict"])
    _check_inversion(G, d["ws_trunc_0.7"][:1], steps=12, lr=0.05)


def test_any_picture_is_centre_cropped_and_resized(tmp_path):
    """A 60x20 picture, red | green | blue thirds: the centre square is the green third."""
    rgb = np.zeros((20, 60, 3), np.uint8)
    rgb[:, :20, 0] = rgb[:, 20:40, 1] = rgb[:, 40:, 2] = 255
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    img, note = load_image(tmp_path / "wide.png", 8)
    assert img.shape == (1, 3, 8, 8)
    torch.testing.assert_close(img[0, :, 4, 4], torch.tensor([-1.0, 1.0, -1.0]))
    assert "60x20, centre-cropped to 20x20 and resized to 8x8" in note
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InputError, match=r"broken\.jpg: not a readable image"):
        load_image(tmp_path / "broken.jpg", 8)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips 0.1.4
def test_lpips_matches_the_lpips_package_on_the_same_vgg(tmp_path):
    """Our LPIPS-VGG equals the `lpips` package's (same VGG16 weights, its calibrated lins)."""
    lpips = pytest.importorskip("lpips")
    from torchvision.models import vgg16

    torch.manual_seed(0)
    vgg = vgg16(weights=None)
    torch.save(vgg.state_dict(), tmp_path / "vgg16.pth")
    ref = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    taps = (4, 9, 16, 23, 30)
    ref.net.load_state_dict(
        {
            f"slice{next(s for s, end in enumerate(taps, 1) if int(k.split('.')[0]) < end)}.{k}": v
            for k, v in vgg.features.state_dict().items()
        }
    )
    ours = load_vgg_lpips(tmp_path / "vgg16.pth")
    x, y = torch.rand(2, 2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(ours(x, y), ref(x, y).flatten())
    assert ours(x, x).abs().max() == 0


def test_tiny_lpips_is_a_distance():
    d: Lpips = tiny_lpips()
    x, y = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    assert torch.equal(d(x, x), torch.zeros(2)) and (d(x, y) > 0).all()
    torch.testing.assert_close(d(x, y), d(y, x))


def test_cli_inverts_a_photo_on_the_tiny_run(run_dir, photo, tmp_path, capsys):
    out = tmp_path / "flower.wplus.pt"
    code = main(["--checkpoint", str(run_dir), "--image", str(photo), "--out", str(out)]
                + ["--set", "photo.steps=3", "--device", "cpu", "--quiet"])  # fmt: skip
    assert code == 0
    said = capsys.readouterr().out
    assert "960x540, centre-cropped to 540x540 and resized to 16x16" in said
    assert torch.load(out, weights_only=True).shape == (16, 32)
    assert Image.open(out.with_suffix(".png")).size == (16, 16)


@pytest.mark.slow
def test_cli_encoder_init_needs_a_run_with_the_encoder(run_dir, photo, thunder, tmp_path):
    """--init encoder starts from E_a(sound) + mean latent; a bare generator file has no E_a."""
    bare = save_generator(tiny_generator(), tmp_path / "bare.safetensors")
    args = ["--image", str(photo), "--init", "encoder", "--audio", str(thunder), "--steps", "0"]
    args += ["--out", str(tmp_path / "w.pt"), "--device", "cpu", "--quiet"]
    ok = subprocess.run(
        [sys.executable, "-m", "model.invert", "--checkpoint", str(run_dir), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    w_enc = torch.load(tmp_path / "w.pt", weights_only=True)
    assert not torch.equal(w_enc, mean_latent(tiny_generator())[0])  # E_a moved it
    bad = subprocess.run(
        [sys.executable, "-m", "model.invert", "--checkpoint", str(bare), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"Error: {bare}: a bare generator without the sound-inversion encoder E_a; pass a run "
        "folder written by model.train"
    ]


@pytest.mark.slow
def test_generate_animates_a_photo_with_text_and_style(run_dir, photo, shared_media, tmp_path):
    """`model.generate --image photo.jpg`: invert, style-mix, text-guide, walk; sound muxed in."""
    sound = shared_media / "waterfall__redeclipse-sounds__creek.ogg"  # 5 s
    out = tmp_path / "moving.mp4"
    cmd = [sys.executable, "-m", "model.generate", "--checkpoint", str(run_dir), "--device", "cpu"]
    cmd += ["--audio", str(sound), "--out", str(out), "--fps", "2"]
    edits = ["--steps", "2", "--style-from", "7", "--levels", "fine", "--text", "a waterfall"]
    proc = subprocess.run(
        [*cmd, "--image", str(photo), *edits], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "centre-cropped to 540x540" in proc.stdout and "10 frames" in proc.stdout
    with av.open(str(out)) as c:
        assert c.streams.audio and abs(float(c.duration) / 1e6 - 5.0) < 0.3
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert frames.shape == (10, 16, 16, 3) and frames.std() > 0
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    bad = subprocess.run(
        [*cmd, "--image", str(tmp_path / "broken.jpg")], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith(f"Error: {tmp_path / 'broken.jpg'}: not a readable image")
    assert len(bad.stderr.strip().splitlines()) == 1
