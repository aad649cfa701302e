"""Alias-free resampling for StyleGAN3 in plain PyTorch: filter design and the filtered leaky ReLU.

`filtered_lrelu` has the semantics of NVIDIA's op (bias, upsample by zero insertion + FIR filter,
leaky ReLU with gain and clamp, FIR filter + decimation), computed without the zero insertion and
without the discarded samples:

- a separable (1-D) filter becomes, per axis, the dense `[out, in]` matrix of the whole 1-D
  up/pad/filter/down operator; applying it is one batched matmul per axis (polyphase and strided
  by construction, BLAS-fast on CPU, tensor cores on GPU, differentiable, `torch.compile`-able);
- a 2-D (radial) filter is applied by a strided depthwise convolution (only the kept outputs);
- the output gain is folded into the downsampling filter and the clamp scaled to match.

All ops are ordinary autograd ops, so gradients flow to the input (W+ codes upstream).
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


def upfirdn_size(n_in: int, taps: int, up: int, down: int, pad0: int, pad1: int) -> int:
    """Output length of zero-insert by `up`, pad, FIR of `taps`, keep every `down`-th sample."""
    return (n_in * up + pad0 + pad1 - taps) // down + 1


def upfirdn_matrix(
    f: torch.Tensor | None, n_in: int, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0
) -> torch.Tensor:
    """The 1-D upfirdn operator as a dense `[n_out, n_in]` matrix (true convolution with `f`).

    out[j] = sum_i x[i] * f[taps - 1 - (i * up + pad0 - j * down)]  (zero outside the taps): the
    sample i sits at i * up + pad0 in the padded zero-inserted signal, output j reads the window
    starting at j * down. Negative padding crops.
    """
    if f is None:
        f = torch.ones([1])
    taps = f.shape[0]
    n_out = upfirdn_size(n_in, taps, up, down, pad0, pad1)
    j = torch.arange(n_out, device=f.device).unsqueeze(1)  # [n_out, 1]
    i = torch.arange(n_in, device=f.device).unsqueeze(0)  # [1, n_in]
    k = i * up + pad0 - j * down  # [n_out, n_in] tap index of the flipped filter
    k = torch.where((k >= 0) & (k < taps), k, taps)  # out-of-range -> the appended zero
    taps_flipped = F.pad(f.flip(0), [0, 1])  # [taps + 1]
    return taps_flipped[k]


class Resampler(NamedTuple):
    """A prepared `upfirdn2d` for one input size: per-axis operator matrices (separable filter),
    or a flipped 2-D filter for a strided depthwise convolution."""

    mw_t: torch.Tensor | None  # [W, W_out], transposed for a contiguous right-hand matmul
    mh: torch.Tensor | None  # [H_out, H]
    f2d: torch.Tensor | None  # [K, K], flipped, gain applied
    up: int
    down: int
    padding: tuple[int, int, int, int]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        if self.f2d is None:
            x = torch.matmul(x, self.mw_t.to(x.dtype))  # [N, C, H, W_out]
            return torch.matmul(self.mh.to(x.dtype), x)  # [N, C, H_out, W_out]
        c, taps = x.shape[1], self.f2d.shape[-1]
        weight = self.f2d.to(x.dtype)[None, None].expand(c, 1, taps, taps)
        px0, px1, py0, py1 = self.padding
        if self.up == 1:
            return F.conv2d(F.pad(x, [px0, px1, py0, py1]), weight, stride=self.down, groups=c)
        # 2-D upsampling filter (unused by StyleGAN3): the transposed conv places x[i] at i * up,
        # its output sample 0 sits at taps - 1 of the padded, zero-inserted, filtered signal.
        x = F.conv_transpose2d(x, weight.flip([2, 3]), stride=self.up, groups=c)
        lo, hi = 1 - taps, self.up - taps
        x = F.pad(x, [px0 + lo, px1 + hi, py0 + lo, py1 + hi])
        return x[:, :, :: self.down, :: self.down]


def resampler(
    f: torch.Tensor | None,
    size: tuple[int, int],
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = 1.0,
) -> Resampler:
    """Prepare `upfirdn2d` with filter `f` (None, [K] separable or [K, K]) for inputs of `size`
    (H, W): zero insertion by `up`, padding [x0, x1, y0, y1] (negative crops), true convolution
    with `f` scaled by `gain` in total, keeping every `down`-th sample."""
    pad = _parse_padding(padding)
    if f is None or f.ndim == 1:
        h, w = size
        mw = upfirdn_matrix(f, w, up, down, pad[0], pad[1])  # [W_out, W]
        mh = upfirdn_matrix(f, h, up, down, pad[2], pad[3])  # [H_out, H]
        return Resampler((mw * gain).t().contiguous(), mh, None, up, down, pad)
    return Resampler(None, None, (f * gain).flip([0, 1]), up, down, pad)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad/crop, FIR filter (true convolution), downsample; NCHW."""
    return resampler(f, tuple(x.shape[2:]), up, down, padding, gain)(x)


class FilteredLReLUPlan(NamedTuple):
    """`filtered_lrelu` prepared for one input size (see `filtered_lrelu_plan`)."""

    upsample: Resampler
    downsample: Resampler  # output gain folded in
    slope: float
    clamp: float | None  # divided by the gain

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        if self.slope != 1:
            x = F.leaky_relu(x, self.slope)
        if self.clamp is not None:
            x = x.clamp(-self.clamp, self.clamp)
        return self.downsample(x)


def filtered_lrelu_plan(
    size: tuple[int, int],
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> FilteredLReLUPlan:
    """Prepare `filtered_lrelu` (without the bias) for inputs of `size` (H, W); reuse the plan
    for every call with that size, filters and device."""
    assert gain > 0
    pad = _parse_padding(padding)
    upsample = resampler(fu, size, up=up, padding=pad, gain=up**2)
    up_size = (
        upfirdn_size(size[0], 1 if fu is None else fu.shape[0], up, 1, pad[2], pad[3]),
        upfirdn_size(size[1], 1 if fu is None else fu.shape[-1], up, 1, pad[0], pad[1]),
    )
    # gain * clamp(y, -c / gain, c / gain) == clamp(gain * y, -c, c): fold the gain into fd.
    downsample = resampler(fd, up_size, down=down, gain=gain)
    clamp = clamp / gain if clamp is not None and clamp >= 0 else None
    return FilteredLReLUPlan(upsample, downsample, slope, clamp)


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
    plan = filtered_lrelu_plan(tuple(x.shape[2:]), fu, fd, up, down, padding, gain, slope, clamp)
    return plan(x)
