"""Alias-free resampling for StyleGAN3 in plain PyTorch: filter design and the filtered leaky ReLU.

`filtered_lrelu` has the semantics of NVIDIA's op (bias, upsample by zero insertion + FIR filter,
leaky ReLU with gain and clamp, FIR filter + decimation), computed without the inserted zeros and
without the discarded samples:

- upsampling is a depthwise *transposed* convolution with stride `up` (polyphase: each output
  sample reads only taps / up input samples), one pass per axis for a separable filter;
- downsampling is a depthwise convolution with stride `down` (only the kept samples are computed),
  per axis for a separable filter, one 2-D pass for a radial one;
- pads and crops are folded into the convolutions' padding (no pad or slice copies), the up gain
  into the up filter, the output gain into the down filter (with the clamp scaled to match); the
  leaky ReLU and clamp run in place, and on the CPU the clamp is skipped where a bound on the
  upsampled peak shows it cannot act;
- tensors stay channels-last, where CPU depthwise convolutions are fastest (bench/README.md).

The backward is a custom autograd function (gradients flow to the input, i.e. to W+ upstream): the
adjoint passes (conv2d <-> conv_transpose2d) and the activation's derivative from its saved
output, with no zero-filled crop gradients or clamp masks. Works under autocast and
`torch.compile`; first-order gradients only.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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


class ConvPass(NamedTuple):
    """One depthwise filter pass: a strided conv2d (filter, then decimate) or a strided
    conv_transpose2d (zero insertion, then filter). Pads and crops are folded into `padding`, which
    is symmetric per axis, and into zero taps of `weight`."""

    weight: torch.Tensor  # [C, 1, kh, kw]
    stride: tuple[int, int]
    padding: tuple[int, int]  # (along H, along W)
    transposed: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        conv = F.conv_transpose2d if self.transposed else F.conv2d
        w = self.weight.to(x.dtype)
        return conv(x, w, stride=self.stride, padding=self.padding, groups=x.shape[1])

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        k, s, p = self.weight.shape[2:], self.stride, self.padding
        if self.transposed:
            return tuple((n - 1) * s[i] - 2 * p[i] + k[i] for i, n in enumerate(size))
        return tuple((n + 2 * p[i] - k[i]) // s[i] + 1 for i, n in enumerate(size))

    def adjoint(self, g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The transposed linear map (the gradient): [N, C, H_out, W_out] -> [N, C, *size]."""
        w, c = self.weight.to(g.dtype), g.shape[1]
        if self.transposed:
            return F.conv2d(g, w, stride=self.stride, padding=self.padding, groups=c)
        # conv2d drops (n + 2p - k) % s trailing samples; output_padding gives them back.
        dims = zip(size, g.shape[2:], w.shape[2:], self.stride, self.padding, strict=True)
        extra = [n + 2 * p - k - (m - 1) * s for n, m, k, s, p in dims]
        return F.conv_transpose2d(
            g, w, stride=self.stride, padding=self.padding, output_padding=extra, groups=c
        )


class Resampler(NamedTuple):
    """A prepared `upfirdn2d` (upsampling or downsampling): depthwise passes, gain folded in."""

    passes: tuple[ConvPass, ...]  # one [K, K] pass, or a separable filter's two [K] passes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        for p in self.passes:
            x = p(x)
        return x

    def adjoint(self, g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The gradient with respect to an input of spatial `size`."""
        sizes = []  # the input size of each pass
        for p in self.passes:
            sizes.append(size)
            size = p.out_size(size)
        for p, s in zip(reversed(self.passes), reversed(sizes), strict=True):
            g = p.adjoint(g, s)
        return g

    def to(self, device: torch.device, dtype: torch.dtype) -> Resampler:
        return Resampler(tuple(p._replace(weight=p.weight.to(device, dtype)) for p in self.passes))

    def peak_gain(self) -> float:
        """A bound on max |output| / max |input|: per pass, the largest sum of |taps| that meet
        in one output sample (one polyphase component of a transposed pass)."""
        bound = 1.0
        for p in self.passes:
            w = p.weight[0, 0].abs().double()  # [kh, kw]
            sh, sw = p.stride if p.transposed else (1, 1)
            bound *= max(w[i::sh, j::sw].sum().item() for i in range(sh) for j in range(sw))
        return bound


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
    with `f` scaled by `gain` in total, keeping every `down`-th sample (`up` or `down` is 1)."""
    assert up == 1 or down == 1, "upsample and downsample in separate resamplers"
    x0, x1, y0, y1 = _parse_padding(padding)
    if f is None:
        if gain == 1 and up == down == 1 and not any((x0, x1, y0, y1)):
            return Resampler(())
        f = torch.ones([1, 1])
    f = f * gain ** (f.ndim / 2)  # per pass: two passes for a separable filter
    k, transposed = f.shape[0], up > 1
    if transposed:
        # Output sample j of conv_transpose2d is sample j + k - 1 - pad_lo of the padded, zero-
        # inserted, fully convolved signal: crop (k - 1 - pad_lo, k - up - pad_hi) per axis.
        pads = [(k - 1 - y0, k - up - y1), (k - 1 - x0, k - up - x1)]
    else:  # conv2d correlates: flip the filter for a true convolution
        f = f.flip(list(range(f.ndim)))
        pads = [(y0, y1), (x0, x1)]
    # One symmetric padding (conv2d) or crop (conv_transpose2d) per axis; zero taps before / after
    # the filter shift the samples to the asymmetric one (StyleGAN3's layers need none).
    sym = tuple(max(p0, p1, 0) for p0, p1 in pads)  # (along H, along W)
    (ay, by), (ax, bx) = ((p - p0, p - p1) for p, (p0, p1) in zip(sym, pads, strict=True))
    s = max(up, down)
    if f.ndim == 2:
        f = F.pad(f, [ax, bx, ay, by])
        w = f[None, None].expand(channels, 1, *f.shape).contiguous()
        return Resampler((ConvPass(w, (s, s), sym, transposed),))
    fy, fx = F.pad(f, [ay, by]), F.pad(f, [ax, bx])
    h = ConvPass(fy.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), (s, 1), (sym[0], 0), transposed)
    w = ConvPass(fx.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), (1, s), (0, sym[1]), transposed)
    # The faster order on CPU, channels-last: upsample along H first, downsample along W first.
    return Resampler((h, w) if transposed else (w, h))


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
    decimate = up > 1 and down > 1  # keep every down-th sample of the upsampled signal
    x = resampler(f, x.shape[1], up, 1 if decimate else down, padding, gain)(x)
    return x[:, :, ::down, ::down] if decimate else x


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


def _flat(x: torch.Tensor) -> torch.Tensor:
    """The elements in memory order: a view of a channels-last or contiguous tensor."""
    return (x.permute(0, 2, 3, 1) if _memory_format(x) == torch.channels_last else x).reshape(-1)


class FilteredLReLUPlan(NamedTuple):
    """`filtered_lrelu` (without the bias) prepared for C channels: see `filtered_lrelu_plan`."""

    upsample: Resampler
    downsample: Resampler  # output gain folded in
    slope: float
    clamp: float | None  # divided by the gain
    peak_gain: float  # max |leaky ReLU output| <= peak_gain * max |input|

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H_out, W_out]
        if torch.is_grad_enabled() and x.requires_grad:
            return _FilteredLReLU.apply(x, self)
        return self.downsample(self.activation(x)[0])

    def may_clamp(self, x: torch.Tensor) -> bool:
        """Whether the clamp can change anything. On the CPU, its passes (forward and backward) over
        the upsampled tensor are skipped when the peak gain rules it out; elsewhere the check
        would cost a device sync."""
        if self.clamp is None:
            return False
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return True
        lo, hi = torch.aminmax(_flat(x))  # faster than a norm or abs().amax()
        peak = max(-lo.item(), hi.item()) * self.peak_gain
        return not peak < self.clamp * (1 - 1e-4)  # margin for rounding; NaN: clamp

    def activation(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Upsample, leaky ReLU, clamp to +-clamp: a new tensor (the ops run in place) and whether
        the clamp ran."""
        clamp = self.may_clamp(x)
        y = self.upsample(x) if self.upsample.passes else x.clone()
        if self.slope != 1:
            F.leaky_relu_(y, self.slope)
        if clamp:
            y.clamp_(-self.clamp, self.clamp)
        return y, clamp

    def activation_grad_(self, g: torch.Tensor, y: torch.Tensor, clamp: bool) -> torch.Tensor:
        """`g` times the derivative of the activation, from its output `y`; in place."""
        aten = torch.ops.aten
        if clamp:  # 0 where clamped, |y| == clamp
            aten.hardtanh_backward.grad_input(g, y, -self.clamp, self.clamp, grad_input=g)
        if self.slope != 1:  # slope where y <= 0 (the sign of y is that of the input)
            aten.leaky_relu_backward.grad_input(g, y, self.slope, True, grad_input=g)
        return g

    def to(self, device: torch.device, dtype: torch.dtype) -> FilteredLReLUPlan:
        return self._replace(
            upsample=self.upsample.to(device, dtype), downsample=self.downsample.to(device, dtype)
        )


class _FilteredLReLU(torch.autograd.Function):
    """`FilteredLReLUPlan` with a backward through the adjoint passes; saves only the activation
    output (autograd of the forward ops would also keep, pad and copy the crops and the clamp
    masks)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, plan: FilteredLReLUPlan) -> torch.Tensor:
        y, ctx.clamp = plan.activation(x)
        ctx.plan, ctx.in_size = plan, x.shape[2:]
        ctx.save_for_backward(y)
        return plan.downsample(y)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        plan = ctx.plan
        g = g.to(y.dtype).contiguous(memory_format=_memory_format(y))
        g = plan.downsample.adjoint(g, y.shape[2:]) if plan.downsample.passes else g.clone()
        g = plan.activation_grad_(g, y, ctx.clamp)
        return plan.upsample.adjoint(g, ctx.in_size), None


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
    assert gain > 0 and slope >= 0, (gain, slope)
    upsample = resampler(fu, channels, up=up, padding=padding, gain=up**2)
    # gain * clamp(y, -c / gain, c / gain) == clamp(gain * y, -c, c): fold the gain into fd.
    downsample = resampler(fd, channels, down=down, gain=gain)
    clamp = float(clamp) / float(gain) if clamp is not None and clamp >= 0 else None
    # For the CPU's clamp check (`may_clamp`), which does not run while tracing.
    peak_gain = math.inf if torch.compiler.is_compiling() else upsample.peak_gain()
    peak_gain *= max(float(slope), 1.0)
    return FilteredLReLUPlan(upsample, downsample, float(slope), clamp, peak_gain)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    **options: Any,  # up, down, padding, gain, slope, clamp: as in `filtered_lrelu_plan`
) -> torch.Tensor:
    """Bias, upsample + filter `fu`, leaky ReLU * gain, clamp to +-clamp, filter `fd` + downsample.

    x: [N, C, H, W] -> [N, C, H_out, W_out] with
    W_out = (W * up + px0 + px1 - (fu_taps - 1) - (fd_taps - 1) + (down - 1)) // down.
    `padding` is in the upsampled domain ([x0, x1, y0, y1]), as in NVIDIA's op; the options take
    NVIDIA's keywords and defaults. One call builds a plan; a layer keeps its `filtered_lrelu_plan`.
    """
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    return filtered_lrelu_plan(x.shape[1], fu, fd, **options)(x)
