"""Alias-free resampling for StyleGAN3 in plain PyTorch: filter design and the filtered leaky ReLU.

`filtered_lrelu` has the semantics of NVIDIA's op (bias, upsample by zero insertion + FIR filter,
leaky ReLU with gain and clamp, FIR filter + decimation), computed without the inserted zeros and
without the discarded samples:

- upsampling is a depthwise *transposed* convolution with stride `up` (polyphase: each output
  sample reads only taps / up input samples), one pass per axis for a separable filter;
- downsampling is a depthwise convolution with stride `down` (only the kept samples are computed),
  per axis for a separable filter, one 2-D pass for a radial one;
- the up gain is folded into the up filter, the output gain into the down filter (with the clamp
  scaled to match), the leaky ReLU and clamp run in place;
- tensors stay channels-last, where CPU depthwise convolutions are fastest (2-4x over NCHW).

All ops are ordinary autograd ops (gradients flow to the input, i.e. to W+ upstream), work under
autocast and `torch.compile`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Filter design (Kaiser-windowed sinc / jinc), as in the paper's appendix.


def _kaiser_beta(numtaps: int, width: float) -> float:
    """Kaiser window beta for `numtaps` taps and a transition band `width` (fraction of Nyquist)."""
    atten = 2.285 * (numtaps - 1) * np.pi * width + 7.95  # dB
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR filter, normalised to unit DC gain; None for a single tap.

    Separable: `[numtaps]`, the windowed sinc of `scipy.signal.firwin(numtaps, cutoff, width=width,
    fs=fs)`. Radial: `[numtaps, numtaps]`, a windowed jinc (2-D ideal low-pass of radius `cutoff`)
    with the separable Kaiser window.
    """
    assert numtaps >= 1
    if numtaps == 1:
        return None
    nyq = fs / 2
    beta = _kaiser_beta(numtaps, width / nyq)
    window = np.kaiser(numtaps, beta)  # float64
    m = np.arange(numtaps) - (numtaps - 1) / 2
    if not radial:
        c = cutoff / nyq
        f = c * np.sinc(c * m) * window
        return torch.as_tensor(f / f.sum(), dtype=torch.float32)
    x = m / fs
    r = np.hypot(*np.meshgrid(x, x))  # [numtaps, numtaps]
    with np.errstate(invalid="ignore", divide="ignore"):
        j1 = torch.special.bessel_j1(torch.as_tensor(2 * np.pi * cutoff * r)).numpy()
        f = np.where(r > 0, j1 / (np.pi * r), cutoff)  # limit of J1(2 pi c r) / (pi r) at r = 0
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Resampling.


def _parse_padding(padding: int | list[int] | tuple[int, ...]) -> tuple[int, int, int, int]:
    """int, [x, y] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    assert len(padding) == 4, padding
    return padding[0], padding[1], padding[2], padding[3]


def _pad(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative, by slicing: no copy) the last two axes."""
    if min(x0, x1, y0, y1) < 0:
        h, w = x.shape[2:]
        x = x[:, :, max(-y0, 0) : h - max(-y1, 0), max(-x0, 0) : w - max(-x1, 0)]
    if max(x0, x1, y0, y1) > 0:
        x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    return x


class Resampler(NamedTuple):
    """A prepared `upfirdn2d`: depthwise filter weights (gain folded in) for C channels."""

    weights: tuple[torch.Tensor, ...]  # [C, 1, 1, K] and [C, 1, K, 1] (separable) or [C, 1, K, K]
    strides: tuple[tuple[int, int], ...]  # per weight: (1, s) along W, (s, 1) along H or (s, s)
    taps: tuple[int, int]  # (along H, along W)
    up: int
    down: int
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1) in the upsampled domain

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        c = x.shape[1]
        px0, px1, py0, py1 = self.padding
        th, tw = self.taps
        if self.up == 1:
            x = _pad(x, px0, px1, py0, py1)
            for w, stride in zip(self.weights, self.strides, strict=True):
                x = F.conv2d(x, w.to(x.dtype), stride=stride, groups=c)
            if not self.weights and self.down > 1:
                x = x[:, :, :: self.down, :: self.down]
            return x
        # Transposed conv with stride `up`: input sample i lands at i * up, the filter is applied
        # unflipped, and output sample 0 is sample taps - 1 of the padded zero-inserted signal.
        for w, stride in zip(self.weights, self.strides, strict=True):
            x = F.conv_transpose2d(x, w.to(x.dtype), stride=stride, groups=c)
        if not self.weights:  # no filter: plain zero insertion
            x = F.conv_transpose2d(x, x.new_ones([c, 1, 1, 1]), stride=self.up, groups=c)
        u = self.up
        x = _pad(x, px0 + 1 - tw, px1 + u - tw, py0 + 1 - th, py1 + u - th)
        return x if self.down == 1 else x[:, :, :: self.down, :: self.down]


def resampler(
    f: torch.Tensor | None,
    channels: int,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = 1.0,
) -> Resampler:
    """Prepare `upfirdn2d` with filter `f` (None, [K] separable or [K, K]) for `channels`
    channels: zero insertion by `up`, padding [x0, x1, y0, y1] (negative crops), true convolution
    with `f` scaled by `gain` in total, keeping every `down`-th sample."""
    pad = _parse_padding(padding)
    if f is None and gain == 1:
        return Resampler((), (), (1, 1), up, down, pad)
    if f is None:
        f = torch.ones([1])
    f = f * gain ** (f.ndim / 2)  # per pass: two passes for a separable filter
    if up == 1:  # a convolution: flip the filter
        f = f.flip(list(range(f.ndim)))
    taps, s = f.shape[0], (up if up > 1 else down)  # the stride of the filter passes
    if f.ndim == 1:
        w = f[None, None, None, :].expand(channels, 1, 1, taps).contiguous()  # along W
        weights, strides = (w, w.reshape(channels, 1, taps, 1)), ((1, s), (s, 1))
    else:
        weights, strides = (f[None, None].expand(channels, 1, taps, taps).contiguous(),), ((s, s),)
    return Resampler(weights, strides, (taps, taps), up, down, pad)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad/crop, FIR filter (true convolution), downsample; NCHW.

    `f` is None (identity), [K] (separable: along both axes) or [K, K]; its total gain is `gain`.
    Output size along W: (W * up + x0 + x1 - K) // down + 1.
    """
    return resampler(f, x.shape[1], up, down, padding, gain)(x)


class FilteredLReLUPlan(NamedTuple):
    """`filtered_lrelu` (without the bias) prepared for C channels: see `filtered_lrelu_plan`."""

    upsample: Resampler
    downsample: Resampler  # output gain folded in
    slope: float
    clamp: float | None  # divided by the gain

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        x = self.upsample(x)
        if self.clamp is not None:
            # clamp(lrelu(x), -c, c) == lrelu(clamp(x, -c / slope, c)) for 0 < slope <= 1.
            x = x.clamp(-self.clamp / self.slope if self.slope > 0 else None, self.clamp)
            if self.slope != 1:  # in place on the fresh clamped tensor
                x = F.leaky_relu_(x, self.slope) if self.slope > 0 else F.leaky_relu(x, self.slope)
        elif self.slope != 1:
            x = F.leaky_relu(x, self.slope)
        return self.downsample(x)


def filtered_lrelu_plan(
    channels: int,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> FilteredLReLUPlan:
    """Prepare `filtered_lrelu` (without the bias) for `channels` channels; reuse it while the
    filters, device and dtype stay the same."""
    assert gain > 0
    upsample = resampler(fu, channels, up=up, padding=padding, gain=up**2)
    # gain * clamp(y, -c / gain, c / gain) == clamp(gain * y, -c, c): fold the gain into fd.
    downsample = resampler(fd, channels, down=down, gain=gain)
    clamp = float(clamp) / float(gain) if clamp is not None and clamp >= 0 else None
    return FilteredLReLUPlan(upsample, downsample, float(slope), clamp)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, upsample + filter `fu`, leaky ReLU * gain, clamp to +-clamp, filter `fd` + downsample.

    x: [N, C, H, W] -> [N, C, H_out, W_out] with
    W_out = (W * up + px0 + px1 - (fu_taps - 1) - (fd_taps - 1) + (down - 1)) // down.
    `padding` is in the upsampled domain ([x0, x1, y0, y1]), as in NVIDIA's op.
    """
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    plan = filtered_lrelu_plan(x.shape[1], fu, fd, up, down, padding, gain, slope, clamp)
    return plan(x)
