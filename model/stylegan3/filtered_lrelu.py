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


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | list[int] = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad/crop, FIR filter (true convolution), downsample; NCHW.

    `f` is None (identity), `[taps]` (separable, applied along both axes) or `[taps, taps]`.
    The filter is scaled by `gain` in total (sqrt(gain) per axis for a separable one).
    """
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape
    if f is None or f.ndim == 1:
        mw = upfirdn_matrix(f, w, up, down, px0, px1).to(x.dtype)  # [w_out, w]
        mh = upfirdn_matrix(f, h, up, down, py0, py1).to(x.dtype)  # [h_out, h]
        if gain != 1:
            mw = mw * gain
        x = torch.matmul(x, mw.t())  # [n, c, h, w_out]
        return torch.matmul(mh, x)  # [n, c, h_out, w_out]
    taps = f.shape[-1]
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, taps, taps)
    if up == 1:
        x = F.pad(x, [px0, px1, py0, py1])
        return F.conv2d(x, weight, stride=down, groups=c)
    # 2-D upsampling filter (unused by StyleGAN3): transposed conv places x[i] at i * up.
    x = F.conv_transpose2d(x, weight.flip([2, 3]), stride=up, groups=c)
    # The transposed conv's sample 0 sits at taps - 1 of the zero-padded, filtered signal.
    x = F.pad(x, [px0 - taps + 1, px1 - taps + 1 + up - 1, py0 - taps + 1, py1 - taps + 1 + up - 1])
    return x[:, :, ::down, ::down]


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
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    # gain * clamp(y, -c / gain, c / gain) == clamp(gain * y, -c, c) for gain > 0: fold the gain
    # into the downsampling filter.
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp / gain, clamp / gain)
    return upfirdn2d(x, fd, down=down, gain=gain)
