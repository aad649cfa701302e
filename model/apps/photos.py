"""Photos and W+ files: a picture or a saved latent -> W+ (`photo_latent`: read a `.pt`, or invert
the picture into the frozen generator under MSE + LPIPS), and images -> a PNG strip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch import Tensor, nn
from torchvision.utils import save_image

from model import runtime
from model.apps.checkpoint import Run
from model.apps.options import PhotoOptions
from model.config import InputError, UsageError
from model.perceptual import VGG_HELP, Lpips, load_vgg_lpips, tiny_lpips
from model.torch_files import load_torch_file

WPLUS_SUFFIXES = (".pt", ".pth")
"""A `--image` with one of these endings is a saved W+ latent, anything else a picture."""


def load_image(path: str | Path, resolution: int) -> tuple[Tensor, str]:
    """A picture as [1, 3, R, R] in [-1, 1]: the centred square crop resized to R (Lanczos); and a
    line saying what was done."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.LANCZOS)
    pixels = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    img = pixels.view(resolution, resolution, 3).permute(2, 0, 1).float() / 127.5 - 1
    note = f"{path}: {w}x{h}, centre-cropped to {s}x{s} and resized to {resolution}x{resolution}"
    return img[None], note


def load_wplus(path: str | Path, num_ws: int, w_dim: int) -> Tensor:
    """A W+ latent from a torch file: [1, num_ws, w_dim]."""
    try:
        w = load_torch_file(path)
    except ValueError as e:
        raise InputError(f"--image {e}") from e
    if not isinstance(w, torch.Tensor):
        raise InputError(f"--image {path}: expected a tensor, found {type(w).__name__}")
    w = w.float().reshape(-1, *w.shape[-2:]) if w.dim() >= 2 else w
    if tuple(w.shape) != (1, num_ws, w_dim):
        raise InputError(f"--image {path}: W+ must be [{num_ws}, {w_dim}], got {list(w.shape)}")
    return w


def mean_latent(G: nn.Module) -> Tensor:
    """w_avg at every layer: [1, num_ws, w_dim]."""
    return G.mapping.w_avg.detach().view(1, 1, -1).repeat(1, G.num_ws, 1).clone()


@dataclass
class Inversion:
    w: Tensor  # [1, num_ws, w_dim]
    image: Tensor  # G(w) [1, 3, R, R]
    losses: list[float]  # total loss before each step, then after the last one
    mse_start: float  # MSE of the starting latent's image
    mse: float  # MSE of the result


def invert_image(
    G: nn.Module,
    target: Tensor,
    w_init: Tensor,
    steps: int,
    lr: float = 0.05,
    perceptual: Lpips | None = None,
    lpips_weight: float = 1.0,
    bar: runtime.StepBar | None = None,
) -> Inversion:
    """Optimise W+ from `w_init` [1, N, D] so that G.synthesis matches `target` [1, 3, R, R]."""
    target = target.to(w_init.device)
    w = w_init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))

    def loss_of(img: Tensor) -> tuple[Tensor, Tensor]:
        mse = (img - target).pow(2).mean()
        if perceptual is None or lpips_weight == 0:
            return mse, mse
        return mse + lpips_weight * perceptual(img, target).mean(), mse

    losses: list[float] = []
    mse_start = None
    for _ in range(steps):
        with torch.enable_grad():  # also under model.generate's no_grad
            loss, mse = loss_of(G.synthesis(w))
        mse_start = mse.item() if mse_start is None else mse_start
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.advance(f"loss {losses[-1]:.4f} mse {mse.item():.4f}")
    with torch.no_grad():
        img = G.synthesis(w)
        loss, mse = loss_of(img)
    losses.append(loss.item())
    return Inversion(
        w.detach(), img, losses, mse.item() if mse_start is None else mse_start, mse.item()
    )


def perceptual_for(run: Run, lpips_vgg: str | None, lpips_weight: float) -> Lpips | None:
    """LPIPS-VGG from `lpips_vgg`; the random stand-in for a tiny run; None for MSE only."""
    if lpips_weight == 0:
        return None
    if lpips_vgg is not None:
        try:
            return load_vgg_lpips(lpips_vgg).to(run.device)
        except ValueError as e:  # not VGG16 weights, or a torch file the loader refuses
            raise InputError(str(e)) from e
    if run.tiny:
        return tiny_lpips().to(run.device)
    raise UsageError(f"{run.source}: not a tiny run, so LPIPS needs --lpips-vgg. {VGG_HELP}")


def photo_latent(
    run: Run,
    path: str | Path,
    opts: PhotoOptions,
    rt: runtime.Runtime,
    w_init: Tensor | None = None,
) -> tuple[Tensor, Inversion | None]:
    """W+ [1, N, D] of `path`: loaded when it is a saved latent, else the picture inverted (from
    `w_init`, default the mean latent; the centre-crop note is printed). Returns the inversion too."""
    G = run.G
    if Path(path).suffix in WPLUS_SUFFIXES:
        return load_wplus(path, G.num_ws, G.w_dim).to(run.device), None
    target, note = load_image(path, G.img_resolution)
    runtime.rank_zero_print(rt, note)
    perceptual = perceptual_for(run, opts.lpips_vgg, opts.lpips_weight)
    w0 = mean_latent(G) if w_init is None else w_init
    with runtime.progress(opts.steps, rt, opts.quiet, description="invert") as bar:
        inv = invert_image(G, target, w0, opts.steps, opts.lr, perceptual, opts.lpips_weight, bar)
    return inv.w, inv


def to_png(images: Tensor, path: str | Path) -> Path:
    """[N, 3, R, R] in [-1, 1] side by side as one PNG strip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strip = torch.cat(list(images.detach().float().cpu().clamp(-1, 1)), dim=-1)
    save_image((strip + 1) / 2, path)
    return path
