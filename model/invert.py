"""A photo into the frozen StyleGAN3's W+: `python -m model.invert --checkpoint RUN_DIR --image
photo.jpg --out photo.wplus.pt`.

The photo (any size or aspect) is centre-cropped to a square and resized to the generator's
resolution; a W+ latent w [num_ws, w_dim] is optimised (Adam) so that G.synthesis(w) matches it under

    MSE(G(w), photo) + lpips_weight * LPIPS(G(w), photo)

(see `model.perceptual`: LPIPS-VGG from `--lpips-vgg`; a tiny run uses a random stand-in). It starts
from the mean latent (w_avg at every layer) or, with `--init encoder --audio s.wav`, from the run's
sound-inversion encoder: w = E_a(mel) + w_avg (eq. 1 with the mean latent). The latent is saved
with `torch.save` ([num_ws, w_dim]) and its reconstruction as a PNG beside it (same name, `.png`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from torch import Tensor, nn
from torchvision.utils import save_image

from model import config, runtime
from model.audio import MelConfig, clip_mels, load_wave
from model.config import Flag, InputError, UsageError, command
from model.encoder import invert
from model.generate import DEVICE, LPIPS_VGG, QUIET, STEPS, load_run, load_wplus
from model.perceptual import VGG_HELP, Lpips, load_vgg_lpips, tiny_lpips

WPLUS_SUFFIXES = (".pt", ".pth")
"""A `--image` with one of these endings is a saved W+ latent, anything else a picture."""


# ----------------------------------------------------------------------------------------------
# What a checkpoint gives the applications


@dataclass
class Run:
    """The frozen generator of `--checkpoint`, its E_a + walker (None for a bare generator file)
    and its training config ({} for a bare generator), plus the CLIP / F_a it was trained with,
    loaded on first use."""

    source: Path
    G: nn.Module
    latents: nn.Module | None
    cfg: dict[str, Any]
    device: torch.device
    _guides: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def tiny(self) -> bool:
        return bool(self.cfg.get("tiny"))

    @property
    def truncation(self) -> float:
        return float(self.cfg.get("model", {}).get("truncation", 0.7))

    def encoder(self) -> nn.Module:
        """E_a of the run; a one-line error naming the checkpoint when it has none."""
        if self.latents is None:
            raise InputError(
                f"{self.source}: a bare generator without the sound-inversion encoder E_a; "
                "pass a run folder written by model.train"
            )
        return self.latents.encoder

    def mel(self, audio: str | Path) -> Tensor:
        """The whole sound's log-mel [1, 1, n_mels, L], as the run's E_a and F_a read it."""
        mel_cfg = MelConfig(n_mels=self.cfg.get("n_mels", 128))
        wave, _ = load_wave(audio, mel_cfg.sample_rate)
        return clip_mels(wave, mel_cfg, 1)[0][None].to(self.device)

    def clip(self, path: str | None = None) -> nn.Module:
        """The run's frozen CLIP (`path` overrides the recorded weights)."""
        from model.clip import load_clip

        arch = self.cfg.get("clip_arch", "ViT-B-32")
        return self._guide("clip", path, lambda p: load_clip(p, arch=arch))

    def sound_clip(self, path: str | None = None) -> nn.Module:
        """The run's frozen sound-CLIP encoder F_a (`path` overrides the recorded one)."""
        from model.sound_clip import load_sound_clip

        return self._guide("sound_clip", path, load_sound_clip)

    def _guide(self, key: str, path: str | None, load: Any) -> nn.Module:
        if key not in self._guides:
            if self.tiny and path is None:
                self._load_tiny_guides()
            else:
                path = path or self.cfg.get(key)
                if path is None:
                    flag = "--" + key.replace("_", "-")
                    raise InputError(f"{self.source}: no {key} weights recorded; pass {flag}")
                try:
                    self._guides[key] = load(path).to(self.device)
                except ValueError as e:  # weights out of bounds, damaged or of another kind
                    raise InputError(str(e)) from e
        return self._guides[key]

    def _load_tiny_guides(self) -> None:
        """The random tiny CLIP and F_a a `--tiny` run trained with (rebuilt from its seed)."""
        from model.train import TrainConfig, load_frozen

        with torch.random.fork_rng(devices=[]):  # load_frozen seeds the global generator
            frozen = load_frozen(TrainConfig(tiny=True, seed=self.cfg.get("seed", 0)), self.device)
        self._guides.setdefault("clip", frozen.clip)
        self._guides.setdefault("sound_clip", frozen.sound_clip)


def open_checkpoint(path: str | Path, device: torch.device) -> Run:
    """A run folder (or one checkpoint of it) of model.train, or a bare generator file (.pkl /
    .safetensors of model.stylegan3)."""
    path = Path(path)
    if path.is_file():
        from model.stylegan3 import load_generator

        try:
            return Run(path, load_generator(path, device), None, {}, device)
        except ValueError as e:  # a file out of bounds, damaged or of another kind
            raise InputError(str(e)) from e
    try:
        latents, G, cfg = load_run(path, device)
    except KeyError as e:
        raise InputError(f"{path}: {e.args[0]}") from None
    return Run(path, G, latents, cfg, device)


# ----------------------------------------------------------------------------------------------
# Images and inversion


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


@dataclass
class PhotoOptions:
    """How a photo becomes a latent (shared by invert, edit and generate)."""

    steps: int = 300
    lr: float = 0.05
    lpips_weight: float = 1.0
    lpips_vgg: str | None = None
    quiet: bool = False


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


# ----------------------------------------------------------------------------------------------
# The command


PHOTO_FLAGS = [
    STEPS,
    Flag("lr", "Adam learning rate of the inversion and the guidance."),
    Flag("lpips_weight", "Weight of LPIPS next to MSE (0: MSE only)."),
    LPIPS_VGG,
    QUIET,
]
"""The flags of PhotoOptions (model.edit and model.invert put them `within("photo")`)."""


def check_photo(photo: PhotoOptions) -> None:
    """A `UsageError` for a PhotoOptions setting out of range."""
    if photo.steps < 0:
        raise UsageError(f"--steps {photo.steps}: must be 0 or more")
    if photo.lr <= 0:
        raise UsageError(f"--lr {photo.lr}: must be positive")
    if photo.lpips_weight < 0:
        raise UsageError(f"--lpips-weight {photo.lpips_weight}: must be 0 or more")


@dataclass
class InvertConfig:
    checkpoint: str = ""  # run folder of model.train, or a bare generator file
    image: str = ""  # the photo
    out: str = ""  # the W+ latent (.pt); its reconstruction goes beside it (.png)
    init: str = "mean"  # mean | encoder (E_a of --audio added to the mean latent)
    audio: str | None = None
    photo: PhotoOptions = field(default_factory=PhotoOptions)
    device: str = "auto"


def run_invert(cfg: InvertConfig) -> Inversion:
    """Invert `cfg.image`, save the latent at `cfg.out` and its reconstruction beside it."""
    check_photo(cfg.photo)
    if cfg.init == "encoder" and cfg.audio is None:
        raise UsageError("--init encoder needs --audio: E_a inverts that sound")
    rt = runtime.setup(cfg.device)
    run = open_checkpoint(cfg.checkpoint, rt.device)
    w0 = mean_latent(run.G)
    if cfg.init == "encoder":
        with torch.no_grad():
            w0 = invert(run.encoder(), run.mel(cfg.audio), w0)
    _, inv = photo_latent(run, cfg.image, cfg.photo, rt, w0)
    if inv is None:
        raise UsageError(f"--image {cfg.image}: already a W+ latent, nothing to invert")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(inv.w[0].cpu(), out)
    png = to_png(inv.image, out.with_suffix(".png"))
    print(
        f"{out}: W+ {list(inv.w.shape[1:])} after {cfg.photo.steps} steps from the "
        f"{cfg.init} latent; MSE {inv.mse_start:.4f} -> {inv.mse:.4f}; reconstruction {png}"
    )
    return inv


@command(
    "python -m model.invert",
    InvertConfig,
    [
        Flag(
            "checkpoint",
            "Run folder of model.train, or a generator file.",
            exists=True,
            required=True,
        ),
        Flag("image", "The photo.", exists=True, required=True),
        Flag("out", "The W+ latent (.pt); its reconstruction goes to .png.", required=True),
        Flag(
            "init",
            "Start from the mean latent, or from E_a(--audio) + mean latent.",
            choices=("mean", "encoder"),
        ),
        Flag("audio", "Sound for --init encoder.", exists=True),
        *(f.within("photo") for f in PHOTO_FLAGS),
        DEVICE,
    ],
)
def cli(cfg: InvertConfig) -> None:
    """A photo into the frozen StyleGAN3's W+ (MSE + LPIPS), saved with its reconstruction."""
    run_invert(cfg)


def main(argv: list[str] | None = None) -> int:
    return config.run(cli, argv)  # `run` names a checkpoint's Run here


if __name__ == "__main__":
    sys.exit(main())
