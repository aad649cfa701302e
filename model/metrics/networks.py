"""The pretrained feature networks of the evaluation, read from local files under `--weights`.

Each `Network` names its files, where they are normally obtained and the metrics that need it; the
loaders wrap the files behind one small interface per network (uint8 frames in, numpy out), so the
metric code never sees a network. Nothing is downloaded. A folder may hold a `SHA256SUMS` file
(`sha256sum` format); files it lists are checked before loading. The sha256 of every loaded file is
reported (`Loaded.sha256`) and recorded in metrics.json.

Input conventions follow the code that published numbers come from: I3D (StyleGAN-V's FVD) takes
float [N, 3, T, H, W] in 0..255 and resizes to 224 itself (`rescale=True, resize=True,
return_features=True` -> 400-d logits-layer features); the Inception-v3 FID graph (StyleGAN2-ADA /
StyleGAN3 metrics) takes uint8 [N, 3, H, W], resizes to 299 itself and with `no_output_bias=True`
gives 1008 class probabilities; C3D (TGAN, StyleGAN-V's video IS) takes float [N, 3, 16, H, W] in
0..255, resizes to 128 and centre-crops 112 itself, and gives 101 UCF-101 class probabilities.
LPIPS (AlexNet, v0.1 linear heads) is built here from torchvision's AlexNet weights and the lpips
package's heads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F

from landscape_av.files import file_sha256
from model.torch_files import load_torch_file

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class Network:
    name: str
    files: tuple[str, ...]
    metrics: tuple[str, ...]  # metric names (model.evaluate.METRICS) that need it
    source: str  # where the file is normally obtained


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network(
            "i3d",
            ("i3d_torchscript.pt",),
            ("fvd",),
            "StyleGAN-V / DIGAN's TorchScript I3D (Kinetics-400, TF-Hub port), linked from "
            "StyleGAN-V's src/metrics/frechet_video_distance.py",
        ),
        Network(
            "inception",
            ("inception-2015-12-05.pt",),
            ("is_frame",),
            "the TorchScript Inception-v3 FID graph of NVIDIA's stylegan2-ada-pytorch / stylegan3 "
            "metrics (pretrained/metrics/inception-2015-12-05.pt)",
        ),
        Network(
            "c3d",
            ("c3d_ucf101.pt",),
            ("is_video",),
            "StyleGAN-V's TorchScript C3D fine-tuned on UCF-101 (port of TGAN2's chainer model), "
            "linked from its src/metrics/video_inception_score.py",
        ),
        Network(
            "lpips",
            ("alexnet-owt-7be5be79.pth", "lpips_alex.pth"),
            ("recon",),
            "torchvision's AlexNet ImageNet weights (torchvision.models.AlexNet_Weights.IMAGENET1K_V1)"
            " and the lpips package's lpips/weights/v0.1/alex.pth, renamed lpips_alex.pth",
        ),
    )
}


@dataclass
class Loaded:
    network: Network
    model: Callable  # the wrapper below
    sha256: dict[str, str]  # file name -> sha256


def _listed_sums(folder: Path) -> dict[str, str]:
    sums = folder / SUMS_FILE
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def load_networks(
    folder: str | Path | None, names: list[str], device: torch.device
) -> tuple[dict[str, Loaded], list[str]]:
    """The networks `names` from `folder`, and one line per network that could not be loaded
    (missing file, checksum mismatch, unreadable file) naming the file and the metrics skipped."""
    loaded: dict[str, Loaded] = {}
    problems: list[str] = []
    base = Path(folder) if folder is not None else None
    sums = _listed_sums(base) if base is not None else {}
    for name in names:
        net = NETWORKS[name]
        skipped = f"skipping {', '.join(net.metrics)}"
        if base is None:
            problems.append(f"{net.files[0]}: no --weights folder given; {skipped}")
            continue
        paths = [base / f for f in net.files]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            problems.append(f"{missing[0]}: no such file ({net.source}); {skipped}")
            continue
        digests = {p.name: file_sha256(p) for p in paths}
        bad = [f for f, d in digests.items() if f in sums and sums[f] != d]
        if bad:
            problems.append(f"{base / bad[0]}: sha256 differs from {SUMS_FILE}; {skipped}")
            continue
        try:
            model = _LOADERS[name](paths, device)
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            problems.append(f"{paths[0]}: cannot load ({type(e).__name__}: {e}); {skipped}")
            continue
        loaded[name] = Loaded(net, model, digests)
    return loaded, problems


def _video_input(videos: np.ndarray, device: torch.device) -> Tensor:
    """uint8 [N, T, H, W, 3] -> float [N, 3, T, H, W] in 0..255."""
    return torch.from_numpy(np.ascontiguousarray(videos)).to(device).permute(0, 4, 1, 2, 3).float()


class I3D:
    """videos uint8 [N, T, H, W, 3] -> 400-d features [N, 400] (float64)."""

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device):
        self.module, self.device = module, device

    @torch.no_grad()
    def __call__(self, videos: np.ndarray) -> np.ndarray:
        x = _video_input(videos, self.device)
        out = self.module(x, rescale=True, resize=True, return_features=True)
        return out.double().cpu().numpy()


class InceptionV3:
    """images uint8 [N, H, W, 3] -> class probabilities [N, 1008] (float64)."""

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device):
        self.module, self.device = module, device

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2)
        return self.module(x, no_output_bias=True).double().cpu().numpy()


class C3D:
    """videos uint8 [N, 16, H, W, 3] -> UCF-101 class probabilities [N, 101] (float64)."""

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device):
        self.module, self.device = module, device

    @torch.no_grad()
    def __call__(self, videos: np.ndarray) -> np.ndarray:
        return self.module(_video_input(videos, self.device)).double().cpu().numpy()


LPIPS_TAPS = (1, 4, 7, 9, 11)
"""Indices in torchvision's AlexNet `features` after which LPIPS reads (relu1 ... relu5)."""
LPIPS_CHANNELS = (64, 192, 384, 256, 256)
LPIPS_MIN_SIZE = 64
"""Smaller frames are upsampled (bilinear) to this side: AlexNet's pooling needs it."""


class Lpips(nn.Module):
    """LPIPS v0.1 with AlexNet: frames float [N, 3, H, W] in [-1, 1] (two stacks) -> distances [N]."""

    def __init__(self, features: nn.Sequential, heads: list[Tensor]):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.heads = nn.ParameterList([nn.Parameter(h, requires_grad=False) for h in heads])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def _taps(self, x: Tensor) -> list[Tensor]:
        if min(x.shape[-2:]) < LPIPS_MIN_SIZE:
            x = F.interpolate(x, size=(LPIPS_MIN_SIZE,) * 2, mode="bilinear", align_corners=False)
        x = (x - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.features[: LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in LPIPS_TAPS:
                taps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return taps

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        dist = torch.zeros(a.shape[0], device=a.device)
        for fa, fb, head in zip(self._taps(a), self._taps(b), self.heads, strict=True):
            dist += F.conv2d((fa - fb) ** 2, head).mean(dim=(1, 2, 3))
        return dist


def _torchscript(paths: list[Path], device: torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # deprecated in torch 2.x, yet the published files are it
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(paths[0]), map_location=device).eval()


def _lpips(paths: list[Path], device: torch.device) -> Lpips:
    alex = load_torch_file(paths[0])
    features = torchvision.models.alexnet().features
    features.load_state_dict(
        {k.removeprefix("features."): v for k, v in alex.items() if k.startswith("features.")}
    )
    lin = load_torch_file(paths[1])
    heads = [lin[f"lin{k}.model.1.weight"].float() for k in range(len(LPIPS_TAPS))]
    for head, ch in zip(heads, LPIPS_CHANNELS, strict=True):
        if tuple(head.shape) != (1, ch, 1, 1):
            raise ValueError(f"LPIPS head of shape {list(head.shape)}, expected [1, {ch}, 1, 1]")
    return Lpips(features, heads).to(device)


_LOADERS: dict[str, Callable[[list[Path], torch.device], Callable]] = {
    "i3d": lambda p, d: I3D(_torchscript(p, d), d),
    "inception": lambda p, d: InceptionV3(_torchscript(p, d), d),
    "c3d": lambda p, d: C3D(_torchscript(p, d), d),
    "lpips": _lpips,
}
