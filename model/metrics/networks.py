"""The pretrained feature networks of the evaluation, read from local files under `--weights`.

Each `Network` names its files, where they are normally obtained and the metrics that need it; the
loaders wrap the files behind one small interface per network (uint8 frames in, numpy out), so the
metric code never sees a network. Nothing is downloaded. A folder may hold a `SHA256SUMS` file
(`sha256sum` format); files it lists are checked before loading. The sha256 of every loaded file is
reported (`Loaded.sha256`) and recorded in metrics.json.

Where a network's real file is absent, its random stand-in (`model.metrics.standins`, a file named
`standin-NAME...`, never a real file's name) is loaded instead and marked (`Loaded.standin`): every
number made with it is meaningless, and the reports say so.

Input conventions follow the code that published numbers come from: I3D (StyleGAN-V's FVD) takes
float [N, 3, T, H, W] in 0..255 and resizes to 224 itself (`rescale=True, resize=True,
return_features=True` -> 400-d logits-layer features); the Inception-v3 FID graph (StyleGAN2-ADA /
StyleGAN3 metrics) takes uint8 [N, 3, H, W], resizes to 299 itself and with `no_output_bias=True`
gives 1008 class probabilities; C3D (TGAN, StyleGAN-V's video IS) takes float [N, 3, 16, H, W] in
0..255, resizes to 128 and centre-crops 112 itself, and gives 101 UCF-101 class probabilities.
LPIPS is LPIPS-AlexNet v0.1 (`model.perceptual.load_alex_lpips`: torchvision's AlexNet weights and
the lpips package's calibrated heads). NVIDIA's stylegan3 ships the Inception network as
`inception-2015-12-05.pkl`, a pickle that carries the Python source of its network: this project
never runs pickled code, so it reads the TorchScript `inception-2015-12-05.pt` of
stylegan2-ada-pytorch (the same translation of TF's 2015-12-05 graph, the same call) and says so
when only the .pkl is there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from landscape_av.files import file_sha256
from model.perceptual import load_alex_lpips

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class Network:
    name: str
    files: tuple[str, ...]
    metrics: tuple[str, ...]  # metric names (model.evaluate.METRICS) that need it
    source: str  # where the file is normally obtained
    standin: tuple[str, ...]  # the random stand-ins' file names (model.metrics.standins)


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network(
            "i3d",
            ("i3d_torchscript.pt",),
            ("fvd",),
            "StyleGAN-V / DIGAN's TorchScript I3D (Kinetics-400, TF-Hub port), linked from "
            "StyleGAN-V's src/metrics/frechet_video_distance.py",
            ("standin-i3d-random.pt",),
        ),
        Network(
            "inception",
            ("inception-2015-12-05.pt",),
            ("is_frame",),
            "the TorchScript Inception-v3 of NVIDIA's stylegan2-ada-pytorch metrics "
            "(pretrained/metrics/inception-2015-12-05.pt; stylegan3's .pkl is not read)",
            ("standin-inception-random.pt",),
        ),
        Network(
            "c3d",
            ("c3d_ucf101.pt",),
            ("is_video",),
            "StyleGAN-V's TorchScript C3D fine-tuned on UCF-101 (port of TGAN2's chainer model), "
            "linked from its src/metrics/video_inception_score.py",
            ("standin-c3d-random.pt",),
        ),
        Network(
            "lpips",
            ("alexnet-owt-7be5be79.pth",),
            ("source",),
            "torchvision's AlexNet ImageNet weights (torchvision.models.AlexNet_Weights.IMAGENET1K_V1);"
            " LPIPS's heads come from the installed lpips package",
            ("standin-alexnet-random.pth",),
        ),
    )
}
STANDIN_NOTE = "MEANINGLESS: made with random stand-in networks (model.metrics.standins)"


@dataclass
class Loaded:
    network: Network
    model: Callable  # the wrapper below
    sha256: dict[str, str]  # file name -> sha256
    standin: bool = False  # a random stand-in: its numbers mean nothing


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
        standin = not all((base / f).is_file() for f in net.files) and all(
            (base / f).is_file() for f in net.standin
        )
        paths = [base / f for f in (net.standin if standin else net.files)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            pkl = missing[0].with_suffix(".pkl")
            why = (
                f"only {pkl.name}, a pickle carrying Python code, which is never run here; "
                "use the TorchScript .pt of stylegan2-ada-pytorch"
                if pkl.is_file()
                else net.source
            )
            problems.append(f"{missing[0]}: no such file ({why}); {skipped}")
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
        loaded[name] = Loaded(net, model, digests, standin)
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

    @torch.no_grad()
    def prescaled(self, videos: np.ndarray) -> np.ndarray:
        """ASVA's call: frames to [0, 1], bicubic (antialiased) to 224x224 by the caller, then
        [-1, 1], and the network with rescale=False, resize=False: [N, 400] (float64)."""
        x = _video_input(videos, self.device) / 255.0  # [N, 3, T, H, W]
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        frames = F.interpolate(
            frames, size=(224, 224), mode="bicubic", align_corners=False, antialias=True
        )
        x = frames.reshape(n, t, c, 224, 224).permute(0, 2, 1, 3, 4) * 2 - 1
        out = self.module(x, rescale=False, resize=False, return_features=True)
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


LPIPS_MIN_SIZE = 64
"""Smaller frames are upsampled (bilinear) to this side: AlexNet's pooling needs it."""


class FrameLpips:
    """LPIPS-AlexNet distances of frames float [N, 3, H, W] in [-1, 1] (two stacks): [N] (numpy)."""

    def __init__(self, lpips: Callable[[Tensor, Tensor], Tensor], device: torch.device):
        self.lpips, self.device = lpips, device

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> np.ndarray:
        a, b = a.to(self.device), b.to(self.device)
        if min(a.shape[-2:]) < LPIPS_MIN_SIZE:
            size = (LPIPS_MIN_SIZE,) * 2
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
        return self.lpips(a, b).double().cpu().numpy()


def _torchscript(paths: list[Path], device: torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # deprecated in torch 2.x, yet the published files are it
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(paths[0]), map_location=device).eval()


_LOADERS: dict[str, Callable[[list[Path], torch.device], Callable]] = {
    "i3d": lambda p, d: I3D(_torchscript(p, d), d),
    "inception": lambda p, d: InceptionV3(_torchscript(p, d), d),
    "c3d": lambda p, d: C3D(_torchscript(p, d), d),
    "lpips": lambda p, d: FrameLpips(load_alex_lpips(p[0]).to(d), d),
}
