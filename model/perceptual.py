"""LPIPS (Zhang et al., CVPR 2018), the perceptual distance of image inversion, computed here.

    d(x, y) = sum_l mean_hw  sum_c  lin_l[c] * (f_l(x)[c] / |f_l(x)| - f_l(y)[c] / |f_l(y)|)^2

over the taps f_l of a feature network (unit-normalised over channels at every pixel), inputs in
[-1, 1] shifted and scaled as LPIPS v0.1 does. `load_vgg_lpips` is LPIPS-VGG v0.1 itself: torchvision's
VGG16 with ImageNet weights read from a local file (nothing is downloaded) and the calibrated linear
weights `lin_l` that ship inside the `lpips` pip package (its `weights/v0.1/vgg.pth`; the package's
code is not run). `load_alex_lpips` is LPIPS-AlexNet v0.1 (the package's default network, which
`model.evaluate` reports) from torchvision's AlexNet weights and the package's `alex.pth`. `tiny_lpips` is a stand-in for tests and tiny runs: the same formula over a small
random conv net with every channel weighing 1 (LPIPS's uncalibrated "baseline" variant).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from model.torch_files import load_torch_file

VGG_TAPS = (4, 9, 16, 23, 30)  # torchvision vgg16().features ends of relu1_2 ... relu5_3
ALEX_TAPS = (2, 5, 8, 10, 12)  # torchvision alexnet().features ends of relu1 ... relu5
VGG_HELP = (
    "LPIPS-VGG needs torchvision's ImageNet VGG16 weights as a local file: on a machine with "
    "internet, `python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` "
    "stores vgg16-397923af.pth in ~/.cache/torch/hub/checkpoints/; pass that path (or "
    "--lpips-weight 0 for MSE only)"
)


class Lpips(nn.Module):
    """Frozen LPIPS over `stages` (run in sequence, each output a tap) with per-tap channel
    weights `lin` ([C_l] each); (x, y) [N, 3, H, W] in [-1, 1] -> distances [N]."""

    def __init__(self, stages: list[nn.Module], lin: list[Tensor]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        for i, w in enumerate(lin):
            self.register_buffer(f"lin{i}", w.float().flatten())
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Lpips:
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = (torch.cat([x, y]).float() - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=x.device)
        for i, stage in enumerate(self.stages):
            h = stage(h)
            f = h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fy = f.chunk(2)
            lin = getattr(self, f"lin{i}").view(1, -1, 1, 1)
            total = total + ((fx - fy).pow(2) * lin).sum(dim=1).mean(dim=(1, 2))
        return total


def package_lin(net: str) -> list[Tensor]:
    """The calibrated LPIPS v0.1 linear weights of `net` ("vgg" or "alex") that ship in the installed
    `lpips` package (`weights/v0.1/NET.pth`), read as tensors; the package's code is not run."""
    spec = importlib.util.find_spec("lpips")  # finds the package without running its code
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "LPIPS's calibrated weights ship in the `lpips` package: pip install lpips==0.1.4"
        )
    lin_file = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
    lin_sd = load_torch_file(lin_file)
    return [lin_sd[f"lin{i}.model.1.weight"] for i in range(len(lin_sd))]


def _features(path: Path, features: nn.Sequential, what: str, flag: str) -> nn.Sequential:
    """`features` with the `features.*` weights of a torchvision state dict file loaded."""
    state = load_torch_file(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: a {type(state).__name__}, not a state dict")
    state = {
        k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")
    }
    try:
        features.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{flag} {path}: not torchvision {what} weights ({e})") from None
    return features


def _lpips(features: nn.Sequential, taps: tuple[int, ...], lin: list[Tensor]) -> Lpips:
    bounds = (0, *taps)
    stages = [features[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return Lpips(stages, lin)


def load_vgg_lpips(vgg_path: str | Path) -> Lpips:
    """LPIPS-VGG v0.1 from torchvision VGG16 weights at `vgg_path` (a whole-model or `features`
    state dict) and the calibrated linear weights of the installed `lpips` package."""
    from torchvision.models import vgg16

    path = Path(vgg_path)
    if not path.is_file():
        raise FileNotFoundError(f"--lpips-vgg {path}: no such file. {VGG_HELP}")
    lin = package_lin("vgg")
    return _lpips(
        _features(path, vgg16(weights=None).features, "VGG16", "--lpips-vgg"), VGG_TAPS, lin
    )


def load_alex_lpips(alexnet_path: str | Path) -> Lpips:
    """LPIPS-AlexNet v0.1 (the `lpips` package's default, the evaluation's LPIPS) from torchvision
    AlexNet weights at `alexnet_path` and the package's calibrated linear weights."""
    from torchvision.models import alexnet

    path = Path(alexnet_path)
    lin = package_lin("alex")
    return _lpips(
        _features(path, alexnet(weights=None).features, "AlexNet", "weights"), ALEX_TAPS, lin
    )


def tiny_lpips(seed: int = 0, widths: tuple[int, ...] = (8, 16, 32)) -> Lpips:
    """A random stand-in: one conv + ReLU per tap (max-pooled between taps), unit channel weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stages: list[nn.Module] = []
        cin = 3
        for i, c in enumerate(widths):
            pool = [nn.MaxPool2d(2)] if i else []
            stages.append(nn.Sequential(*pool, nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()))
            cin = c
    return Lpips(stages, [torch.ones(c) for c in widths])
