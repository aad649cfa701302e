"""Stand-in feature networks: tiny random nets in the real files' formats, for tests and smoke runs.

    python -m model.metrics.standins --out WEIGHTS_DIR

writes a stand-in of every network of `model.metrics.networks.NETWORKS` (TorchScript I3D,
Inception-v3 and C3D with the real ones' call signatures, input handling and output shapes; a
random torchvision AlexNet state dict for LPIPS) plus a SHA256SUMS, all from a fixed seed. The files
are named `standin-NAME-random.*`, never like the real ones, and `model.evaluate` marks every number
made with one as meaningless: they let it run end to end without the real weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F

from landscape_av.files import file_sha256
from model.metrics.networks import NETWORKS, SUMS_FILE


class StandInI3D(nn.Module):
    """[N, 3, T, H, W] in 0..255 -> 400-d features (or class probabilities)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4 * 4, 400)

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        x = F.adaptive_avg_pool3d(F.relu(self.conv(F.avg_pool3d(x, (1, 8, 8)))), (4, 4, 4))
        logits = self.fc(x.flatten(1))
        return logits if return_features else logits.softmax(dim=1)


class StandInInception(nn.Module):
    """uint8 [N, 3, H, W] -> 2048-d pool features or 1008 class probabilities, at 299x299."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=5, stride=4, padding=2)
        self.pool_fc = nn.Linear(16 * 4 * 4, 2048)
        self.logits = nn.Linear(2048, 1008)

    def forward(
        self,
        img: Tensor,
        return_features: bool = False,
        use_fp16: bool = False,
        no_output_bias: bool = False,
    ) -> Tensor:
        x = F.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = F.adaptive_avg_pool2d(F.relu(self.conv(x / 127.5 - 1.0)), (4, 4))
        features = F.relu(self.pool_fc(x.flatten(1)))
        if return_features:
            return features
        logits = F.linear(
            features, self.logits.weight, None if no_output_bias else self.logits.bias
        )
        return logits.softmax(dim=1)


class StandInC3D(nn.Module):
    """[N, 3, 16, H, W] in 0..255 -> 101 UCF-101 class probabilities (frames at 128, crop 112)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=(1, 4, 4), padding=1)
        self.fc = nn.Linear(8 * 4 * 4 * 4, 101)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        frames = F.interpolate(frames, size=(128, 128), mode="bilinear", align_corners=False)
        frames = frames[..., 8:120, 8:120]
        x = frames.reshape(n, t, c, 112, 112).permute(0, 2, 1, 3, 4) - 100.0
        x = F.adaptive_avg_pool3d(F.relu(self.conv(x)), (4, 4, 4))
        return (self.fc(x.flatten(1)) * 10.0).softmax(dim=1)


def write_standins(out: str | Path, seed: int = 0) -> Path:
    """Write every network file (and SHA256SUMS) into `out`; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in (
            ("i3d", StandInI3D()),
            ("inception", StandInInception()),
            ("c3d", StandInC3D()),
        ):
            with warnings.catch_warnings():  # TorchScript is deprecated, but the real files are it
                warnings.simplefilter("ignore", FutureWarning)
                scripted = torch.jit.script(module.eval())
                torch.jit.save(scripted, str(out / NETWORKS[name].standin[0]))
        alex = torchvision.models.alexnet().features.state_dict()  # torchvision's key names
        torch.save(
            {f"features.{k}": v for k, v in alex.items()}, out / NETWORKS["lpips"].standin[0]
        )
    files = [f for net in NETWORKS.values() for f in net.standin]
    (out / SUMS_FILE).write_text("".join(f"{file_sha256(out / f)}  {f}\n" for f in files))
    return out


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder to write")
@click.option("--seed", default=0, show_default=True, help="seed of the random weights")
def main(out: str, seed: int) -> None:
    """Write random stand-ins of the evaluation's feature networks into OUT."""
    folder = write_standins(out, seed)
    click.echo(f"{folder}: stand-in networks written (random weights: their numbers mean nothing)")


if __name__ == "__main__":
    main()
