"""Straightforward reference of StyleGAN3's synthesis ops, written for clarity, not speed.

The same eval-mode semantics as NVIDIA's pure-PyTorch path: per-sample modulated weights and a
grouped convolution; upsampling by inserting zeros, padding and full-resolution FIR filtering;
filtering at full rate and then dropping samples. The tests compare `model.stylegan3` with it on
configs the fixtures do not cover, and `bench/stylegan3_speed.py` times it as the baseline.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def upfirdn2d_ref(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    """x [N, C, H, W]; f None, [K] (separable) or [K, K]; padding (x0, x1, y0, y1)."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    # Insert up - 1 zeros after every sample.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
    # Pad, or crop where the padding is negative.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # True convolution (flipped filter), depthwise, full rate.
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    # Drop samples.
    return x[:, :, ::down, ::down]


def filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    x = x + b.to(x.dtype).view(1, -1, 1, 1)
    x = upfirdn2d_ref(x, fu, up=up, padding=padding, gain=up**2)
    x = torch.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d_ref(x, fd, down=down)


def modulated_conv2d_ref(x, weight, styles, padding, demodulate, input_gain):
    """Each sample convolved with its own weights: W * s (* demodulation) * input_gain."""
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(n, 1, i, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, o, 1, 1, 1)
    w = w * input_gain
    x = F.conv2d(
        x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, kh, kw), padding=padding, groups=n
    )
    return x.reshape(n, o, *x.shape[2:])


def synthesis_layer_ref(layer, x, w):
    """One `SynthesisLayer` in float32, from its parameters and buffers."""
    styles = layer.affine(w)
    if layer.is_torgb:
        styles = styles / np.sqrt(layer.in_channels * layer.conv_kernel**2)
    x = modulated_conv2d_ref(
        x.float(),
        layer.weight,
        styles,
        padding=layer.conv_kernel - 1,
        demodulate=not layer.is_torgb,
        input_gain=layer.magnitude_ema.rsqrt(),
    )
    return filtered_lrelu_ref(
        x,
        layer.up_filter,
        layer.down_filter,
        layer.bias,
        up=layer.up_factor,
        down=layer.down_factor,
        padding=layer.padding,
        gain=1 if layer.is_torgb else np.sqrt(2),
        slope=1 if layer.is_torgb else 0.2,
        clamp=layer.conv_clamp,
    )


def synthesis_ref(net, ws):
    """`SynthesisNetwork` forward through the reference ops (its input layer is shared)."""
    ws = ws.float().unbind(dim=1)
    x = net.input(ws[0])
    for name, w in zip(net.layer_names, ws[1:], strict=True):
        x = synthesis_layer_ref(getattr(net, name), x, w)
    return x * net.output_scale
