"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks").

Mapping network z -> W+, synthesis network W+ -> image, with the official constructor arguments,
module/parameter/buffer names (an official `state_dict` loads with `strict=True`) and eval-mode
semantics; -T (3x3 convs) and -R (1x1 convs, radial down filters) configs, any resolution.
Plain PyTorch: runs on CPU, CUDA (fp16 layers as in the official config, or autocast) and under
`torch.compile`. Shapes in comments: N batch, I/O in/out channels, H/W height/width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.stylegan3.filtered_lrelu import (
    FilteredLReLUPlan,
    design_lowpass_filter,
    filtered_lrelu_plan,
)


def keep_arguments(module: nn.Module, arguments: dict[str, Any], names: str) -> None:
    """Store the constructor arguments `names` (space-separated) out of `arguments` (the
    constructor's `locals()`) as plain attributes of `module`, for forward and extra_repr."""
    for name in names.split():
        setattr(module, name, arguments[name])


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [N, I]
    padding: int = 0,
    demodulate: bool = True,
    input_gain: torch.Tensor | None = None,  # [] or [I]
    bias: torch.Tensor | None = None,  # [O]
) -> torch.Tensor:  # [N, O, H + 2 * padding - k + 1, ...]
    """Style-modulated convolution with weight demodulation, then `+ bias`.

    Computed as conv(x * s, W) * d + b with one shared-weight convolution for the whole batch,
    equal to convolving each sample with its own modulated weights W * s * d; a 1x1 convolution
    is one batched matmul with those per-sample weights (channels-last: no copies).
    """
    if demodulate:  # pre-normalise for numerical range; cancels out in the demodulation
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
    out_gain = None  # [N, O]
    if demodulate:
        w2 = weight.square().sum(dim=[2, 3])  # [O, I]
        out_gain = (styles.square() @ w2.t() + 1e-8).rsqrt()  # [N, O]
    if input_gain is not None:  # a gain on the input after demodulation: scales the output
        if input_gain.ndim == 0:
            out_gain = input_gain if out_gain is None else out_gain * input_gain
        else:
            styles = styles * input_gain
    if weight.shape[2:] == (1, 1) and padding == 0:
        n, _, h, w = x.shape
        wn = weight[None, :, :, 0, 0] * styles[:, None, :]  # [N, O, I]
        if out_gain is not None:
            wn = wn * (out_gain[:, :, None] if out_gain.ndim == 2 else out_gain)
        wn = wn.transpose(1, 2).to(x.dtype)  # [N, I, O]
        x = x.permute(0, 2, 3, 1).reshape(n, h * w, -1)  # [N, HW, I]: a view if channels-last
        x = torch.bmm(x, wn) if bias is None else torch.baddbmm(bias.to(x.dtype), x, wn)
        return x.view(n, h, w, -1).permute(0, 3, 1, 2)  # [N, O, H, W], channels-last
    x = x * styles.to(x.dtype)[:, :, None, None]
    x = F.conv2d(x, weight.to(x.dtype), padding=padding)
    if out_gain is not None:
        out_gain = out_gain.to(x.dtype)
        out_gain = out_gain[:, :, None, None] if out_gain.ndim == 2 else out_gain
        if bias is not None:
            return torch.addcmul(bias.to(x.dtype)[None, :, None, None], x, out_gain)
        return x * out_gain
    return x if bias is None else x + bias.to(x.dtype)[None, :, None, None]


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate and an optional leaky ReLU (gain sqrt(2))."""

    def __init__(
        self,
        in_features: int,  # input features
        out_features: int,  # output features
        activation: str = "linear",  # "linear" or "lrelu" (leaky ReLU, slope 0.2, gain sqrt 2)
        bias: bool = True,  # add a learned bias
        lr_multiplier: float = 1.0,  # learning-rate scale: weights stored / it, used * it
        weight_init: float = 1.0,  # std of the initial weights (before the equalised gain)
        bias_init: float | list[float] = 0.0,  # initial bias: one value, or one per feature
    ):
        super().__init__()
        assert activation in ("linear", "lrelu"), activation
        keep_arguments(self, locals(), "in_features out_features activation")
        self.weight = nn.Parameter(
            torch.randn([out_features, in_features]) * (weight_init / lr_multiplier)
        )
        init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = nn.Parameter(torch.from_numpy(init / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        x = F.linear(x, w, b)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ c [N, c_dim]) -> ws [N, num_ws, w_dim], with truncation toward `w_avg`."""

    def __init__(
        self,
        z_dim: int,  # input latent z dimensionality
        c_dim: int,  # conditioning label dimensionality (0: unconditional)
        w_dim: int,  # intermediate latent w dimensionality
        num_ws: int,  # copies of w to output (one per synthesis input/layer)
        num_layers: int = 2,  # fully connected layers
        lr_multiplier: float = 0.01,  # learning-rate scale of the layers
        w_avg_beta: float = 0.998,  # decay of the running mean of w, tracked in training
    ):
        super().__init__()
        keep_arguments(self, locals(), "z_dim c_dim w_dim num_ws num_layers w_avg_beta")
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx, (in_f, out_f) in enumerate(zip(features[:-1], features[1:], strict=True)):
            layer = FullyConnectedLayer(
                in_f, out_f, activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim]
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:  # [N, num_ws, w_dim]
        if truncation_cutoff is None:
            truncation_cutoff = self.num_ws
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}] for this conditional generator")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
            x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisInput(nn.Module):
    """Fourier features: `channels` sinusoids on a `size`^2 grid, rotated/translated per sample
    by an affine of w[:, 0] and by the user `transform` (3x3, maps output to input coordinates)."""

    def __init__(
        self,
        w_dim: int,  # intermediate latent w dimensionality
        channels: int,  # Fourier features (output channels)
        size: int,  # output side in samples (a square grid)
        sampling_rate: float,  # output sampling rate: samples per unit of input space
        bandwidth: float,  # frequency magnitude of the features (the band limit)
    ):
        super().__init__()
        keep_arguments(self, locals(), "w_dim channels sampling_rate bandwidth")
        self.size = np.broadcast_to(np.asarray(size), [2])
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # user transform, output -> input
        self.register_buffer("freqs", freqs)  # [C, 2]
        self.register_buffer("phases", phases)  # [C]

    def forward(self, w: torch.Tensor) -> torch.Tensor:  # [N, w_dim] -> [N, C, size, size]
        n = w.shape[0]
        t = self.affine(w)  # [N, 4]: (cos, sin, tx, ty), up to scale
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        m_r = torch.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], dim=1)
        m_t = torch.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], dim=1)
        transforms = (
            m_r.view(n, 3, 3) @ m_t.view(n, 3, 3) @ self.transform.unsqueeze(0)
        )  # [N, 3, 3]
        # Transform the frequencies and phases: sin(2 pi (f . (A x + b) + p)).
        phases = self.phases.unsqueeze(0) + (
            self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]
        ).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies that the transform pushes above the band limit.
        amplitudes = (
            1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)
        ).clamp(0, 1)  # [N, C]
        # Sample grid in input coordinates: size / sampling_rate units across, centred.
        sx, sy = (float(s) for s in self.size)
        theta = torch.zeros([1, 2, 3], device=w.device)
        theta[0, 0, 0] = 0.5 * sx / self.sampling_rate
        theta[0, 1, 1] = 0.5 * sy / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, int(sy), int(sx)], align_corners=False)  # [1, H, W, 2]
        x = grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)  # [N, H, W, 1, C]
        x = x.squeeze(3) + phases.unsqueeze(1).unsqueeze(2)  # [N, H, W, C]
        x = torch.sin(x * (np.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()  # [N, H, W, C]
        return x.permute(0, 3, 1, 2)  # [N, C, H, W]

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
            f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"
        )


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU (up to `tmp_sampling_rate`, down to the output rate)."""

    def __init__(
        self,
        w_dim: int,  # intermediate latent w dimensionality
        is_torgb: bool,  # the last layer: 1x1 conv to image channels, no nonlinearity
        is_critically_sampled: bool,  # cutoff at Nyquist; no radial filter there
        use_fp16: bool,  # run in float16 on CUDA
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        in_size: int,  # input side in samples (with the margin)
        out_size: int,  # output side in samples (with the margin)
        in_sampling_rate: int,  # input sampling rate
        out_sampling_rate: int,  # output sampling rate
        in_cutoff: float,  # input cutoff frequency f_c
        out_cutoff: float,  # output cutoff frequency f_c
        in_half_width: float,  # input transition band half-width f_h
        out_half_width: float,  # output transition band half-width f_h
        conv_kernel: int = 3,  # convolution kernel side (1 for StyleGAN3-R)
        filter_size: int = 6,  # low-pass filter taps per resampling factor
        lrelu_upsampling: int = 2,  # upsampling factor around the leaky ReLU
        use_radial_filters: bool = False,  # radially symmetric down filters (StyleGAN3-R)
        conv_clamp: float | None = 256,  # clamp of the activations (None: off)
        magnitude_ema_beta: float = 0.999,  # decay of the running input magnitude (training)
    ):
        super().__init__()
        keep_arguments(
            self,
            locals(),
            "w_dim is_torgb is_critically_sampled use_fp16 in_channels out_channels "
            "in_sampling_rate out_sampling_rate in_cutoff out_cutoff in_half_width out_half_width "
            "conv_clamp magnitude_ema_beta",
        )
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (
            1 if is_torgb else lrelu_upsampling
        )
        self.conv_kernel = 1 if is_torgb else conv_kernel

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel])
        )
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Upsampling filter: in_sampling_rate -> tmp_sampling_rate, keeps the input band.
        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        up_filter = design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate
        )  # [up_taps] or None
        self.register_buffer("up_filter", up_filter)

        # Downsampling filter: tmp_sampling_rate -> out_sampling_rate, radial for -R (not in the
        # critically sampled layers).
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = (
            filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        )
        self.down_radial = use_radial_filters and not is_critically_sampled
        down_filter = design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, self.down_radial
        )  # [down_taps], [down_taps, down_taps] or None
        self.register_buffer("down_filter", down_filter)

        # Padding (in the upsampled domain) so that the output has out_size samples, centred
        # (the symmetric interpretation of sample locations).
        pad_total = (self.out_size - 1) * self.down_factor + 1  # size needed before downsampling
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor  # size after upsampling
        pad_total += self.up_taps + self.down_taps - 2  # size lost to the filters
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]
        self._plans: dict[tuple[torch.device, torch.dtype], FilteredLReLUPlan] = {}

    def filtered_lrelu_plan(self, device: torch.device, dtype: torch.dtype) -> FilteredLReLUPlan:
        """The resampling operators of this layer (built from the filter buffers once per device
        and dtype; loading a state dict rebuilds them)."""
        plan = self._plans.get((device, dtype))
        if plan is None:
            fu, fd = (
                None if f is None else f.to(device, torch.float32)
                for f in (self.up_filter, self.down_filter)
            )
            plan = filtered_lrelu_plan(
                self.out_channels,
                fu,
                fd,
                up=self.up_factor,
                down=self.down_factor,
                padding=self.padding,
                gain=1 if self.is_torgb else math.sqrt(2),
                slope=1 if self.is_torgb else 0.2,
                clamp=self.conv_clamp,
            ).to(device, dtype)
            if not torch.compiler.is_compiling():  # tensors made while tracing are not real
                self._plans[(device, dtype)] = plan
        return plan

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._plans.clear()

    def forward(
        self,
        x: torch.Tensor,  # [N, I, in_size, in_size]
        w: torch.Tensor,  # [N, w_dim]
        noise_mode: str = "random",  # accepted for API compatibility; StyleGAN3 has no noise
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:  # [N, O, out_size, out_size]
        assert noise_mode in ("random", "const", "none")
        if update_emas:
            magnitude_cur = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(
                magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta)
            )
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)  # [N, I]
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel**2))

        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        x = x.to(torch.float16 if fp16 else torch.float32)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            padding=self.conv_kernel - 1,
            demodulate=not self.is_torgb,
            input_gain=input_gain,
            bias=self.bias,
        )  # [N, O, in_size + k - 1, ...]
        return self.filtered_lrelu_plan(x.device, x.dtype)(x)  # [N, O, out_size, out_size]

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, critically_sampled={self.is_critically_sampled}, "
            f"use_fp16={self.use_fp16}, in_size={list(self.in_size)}, out_size={list(self.out_size)}, "
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"sampling_rate={self.in_sampling_rate}->{self.tmp_sampling_rate}->{self.out_sampling_rate}"
        )


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R]; ws[:, 0] drives the input, ws[:, i + 1]
    layer Li. Layer cutoffs/stopbands follow a geometric progression up to the last `num_critical`
    critically sampled layers."""

    def __init__(
        self,
        w_dim: int,  # intermediate latent w dimensionality
        img_resolution: int,  # output image side
        img_channels: int,  # output image channels
        channel_base: int = 32768,  # overall channel multiplier
        channel_max: int = 512,  # channels of any layer at most
        num_layers: int = 14,  # synthesis layers, not counting the ToRGB layer
        num_critical: int = 2,  # critically sampled layers at the end
        first_cutoff: float = 2,  # cutoff frequency of the first layer (f_c,0)
        first_stopband: float = 2**2.1,  # stopband of the first layer (f_t,0)
        last_stopband_rel: float = 2**0.3,  # stopband of the last layer, relative to its cutoff
        margin_size: int = 10,  # samples of margin on each side of the layers' grids
        output_scale: float = 0.25,  # scale of the output image
        num_fp16_res: int = 4,  # float16 in the layers of the highest this many resolutions
        **layer_kwargs: Any,  # SynthesisLayer arguments (conv_kernel, use_radial_filters, ...)
    ):
        super().__init__()
        keep_arguments(
            self,
            locals(),
            "w_dim img_resolution img_channels num_layers num_critical margin_size output_scale "
            "num_fp16_res",
        )
        self.num_ws = num_layers + 2

        last_cutoff = img_resolution / 2  # f_c of the last layer
        last_stopband = last_cutoff * last_stopband_rel  # f_t of the last layer
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents  # f_c[i]
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents  # f_t[i]
        sampling_rates = np.exp2(
            np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution)))
        )  # s[i]
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs  # f_h[i]
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(
            w_dim=w_dim,
            channels=int(channels[0]),
            size=int(sizes[0]),
            sampling_rate=sampling_rates[0],
            bandwidth=cutoffs[0],
        )
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=idx == num_layers,
                is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(sampling_rates[idx] * (2**num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=int(sizes[prev]),
                out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]),
                out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev],
                out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev],
                out_half_width=half_widths[idx],
                **layer_kwargs,
            )
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, **layer_kwargs: Any) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> [N, img_channels, R, R] float32, roughly in [-1, 1]."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:], strict=True):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()  # the layers run channels-last

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}"
        )


class Generator(nn.Module):
    """z (+ c) -> image; `G.mapping`, `G.synthesis`, `G.num_ws` as in NVIDIA's StyleGAN3.

    `init_kwargs` keeps the constructor arguments (JSON-able) for checkpoints.
    """

    def __init__(
        self,
        z_dim: int,  # input latent z dimensionality
        c_dim: int,  # conditioning label dimensionality (0: unconditional)
        w_dim: int,  # intermediate latent w dimensionality
        img_resolution: int,  # output image side
        img_channels: int,  # output image channels
        mapping_kwargs: dict[str, Any] | None = None,  # MappingNetwork arguments
        **synthesis_kwargs: Any,  # SynthesisNetwork arguments
    ):
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        self.init_kwargs = dict(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_kwargs=mapping_kwargs,
            **synthesis_kwargs,
        )
        keep_arguments(self, locals(), "z_dim c_dim w_dim img_resolution img_channels")
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            **synthesis_kwargs,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs
        )

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim]
        *,
        update_emas: bool = False,
        **kwargs: Any,  # truncation_psi, truncation_cutoff: the mapping's; the rest: the synthesis'
    ) -> torch.Tensor:  # [N, img_channels, R, R]
        """`self.synthesis(self.mapping(z, c))`, each given its own keywords of `kwargs`."""
        truncation = {
            k: kwargs.pop(k) for k in ("truncation_psi", "truncation_cutoff") if k in kwargs
        }
        ws = self.mapping(z, c, update_emas=update_emas, **truncation)
        return self.synthesis(ws, update_emas=update_emas, **kwargs)
