"""The fast resampling ops against the straightforward reference, on many shapes and filters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from model.stylegan3.filtered_lrelu import (
    design_lowpass_filter,
    filtered_lrelu,
    filtered_lrelu_plan,
    resampler,
    upfirdn2d,
)

FILTERS = {
    "none": None,
    "even": torch.randn(8, generator=torch.Generator().manual_seed(1)),
    "odd": torch.randn(5, generator=torch.Generator().manual_seed(2)),
    "radial-even": design_lowpass_filter(8, 3.0, 2.0, 16, radial=True),
    "radial-odd": design_lowpass_filter(7, 3.0, 2.0, 16, radial=True),
}
RESAMPLING = [
    (1, 1, (0, 0, 0, 0)),
    (2, 1, (1, 2, 3, 0)),
    (1, 2, (0, 1, 2, -1)),
    (4, 1, (5, 3, -2, 6)),
]
RESAMPLING += [(1, 3, (2, 2, 2, 2)), (2, 2, (1, 1, 1, 1)), (2, 3, (0, 1, 2, 3))]


@pytest.mark.parametrize("fname,resampling", itertools.product(FILTERS, RESAMPLING))
def test_upfirdn2d_matches_reference(ref, fname, resampling):
    up, down, padding = resampling
    x = torch.randn(2, 3, 9, 12, generator=torch.Generator().manual_seed(0))
    f = FILTERS[fname]
    ours = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=3.0)
    theirs = ref.upfirdn2d_ref(x, f, up=up, down=down, padding=padding, gain=3.0)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "up,down,fu_taps,fd,clamp",
    [
        (2, 2, 12, "sep", 256),
        (4, 2, 24, "sep", 0.5),
        (2, 1, 12, "sep", None),
        (2, 2, 12, "radial", 0.3),
        (4, 2, 24, "radial", 256),
    ],
)
def test_filtered_lrelu_matches_reference(ref, up, down, fu_taps, fd, clamp):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 11, 11, generator=gen)
    b = torch.randn(4, generator=gen)
    fu = design_lowpass_filter(fu_taps, 4.0, 3.0, 16 * up)
    fd_taps = 6 * down if down > 1 else 1
    fd = design_lowpass_filter(fd_taps, 5.0, 4.0, 16 * up, radial=fd == "radial")
    fd_taps = 1 if fd is None else fd.shape[0]
    padding = [7, 6, 5, 8]
    kwargs = dict(up=up, down=down, padding=padding, gain=np.sqrt(2), slope=0.2, clamp=clamp)
    ours = filtered_lrelu(x, fu, fd, b, **kwargs)
    theirs = ref.filtered_lrelu_ref(x, fu, fd, b, **kwargs)
    expected_w = (11 * up + 7 + 6 - (fu_taps - 1) - (fd_taps - 1) + (down - 1)) // down
    assert (
        ours.shape
        == theirs.shape
        == (2, 4, (11 * up + 5 + 8 - fu_taps - fd_taps + 2 + down - 1) // down, expected_w)
    )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    if clamp is not None:
        assert (
            ours.abs().max() <= clamp * 1.0001 + 1e-6 or fd is not None
        )  # clamp before the down filter


@pytest.mark.parametrize(
    "fname,resampling",
    itertools.product(FILTERS, [r for r in RESAMPLING if r[0] == 1 or r[1] == 1]),
)
def test_resampler_adjoint_is_the_gradient(fname, resampling):
    """The backward of `filtered_lrelu` runs the adjoint passes: they are the gradient."""
    up, down, padding = resampling
    f = FILTERS[fname]
    r = resampler(None if f is None else f.double(), 3, up, down, padding, gain=3.0)
    x = torch.randn(2, 3, 9, 12, dtype=torch.float64, requires_grad=True)
    y = r(x)
    g = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(r.adjoint(g, x.shape[2:]), expected)


@pytest.mark.parametrize(
    "up,down,fd,slope,clamp",
    [
        (2, 2, "radial", 0.2, 1.0),
        (2, 2, "sep", 0.2, None),
        (4, 2, "sep", 0.0, 0.5),
        (1, 1, None, 1.0, 0.5),
    ],
)
def test_filtered_lrelu_gradient_matches_reference(ref, up, down, fd, slope, clamp):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 10, 10, generator=gen, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last
    )
    fu = design_lowpass_filter(6 * up, 4.0, 3.0, 16 * up).double() if up > 1 else None
    if fd is not None:
        fd = design_lowpass_filter(6 * down, 5.0, 4.0, 16 * up, radial=fd == "radial").double()
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    padding = [6, 5, 6, 5] if up > 1 else [0, 0, 0, 0]
    kwargs = dict(up=up, down=down, padding=padding, gain=np.sqrt(2), slope=slope, clamp=clamp)
    grads = []
    for fn in (filtered_lrelu, ref.filtered_lrelu_ref):
        xi = x.clone().requires_grad_(True)
        fn(xi, fu, fd, b, **kwargs).square().sum().backward()
        grads.append(xi.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "up,fu",
    [
        (2, design_lowpass_filter(12, 4.0, 3.0, 32)),
        (4, design_lowpass_filter(24, 4.0, 3.0, 64)),
        (2, FILTERS["odd"]),
        (2, FILTERS["radial-even"]),
    ],
)
def test_peak_gain_is_the_upsampling_norm(up, fu):
    """The clamp is skipped where peak_gain * max |x| < clamp: peak_gain must bound the upsampled
    peak (and be tight, to skip it often)."""
    plan = filtered_lrelu_plan(1, fu.double(), None, up=up, padding=[3, 2, 4, 1], slope=1)
    impulses = torch.eye(144, dtype=torch.float64).view(144, 1, 12, 12)
    norm = plan.upsample(impulses).flatten(1).abs().sum(0).max().item()  # max row sum of |U|
    assert plan.peak_gain == pytest.approx(norm, rel=1e-9)


def test_lowpass_design_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    for numtaps, cutoff, width, fs in [(12, 2.0, 6.6, 32), (24, 4.0, 10.0, 64), (7, 3.0, 2.0, 16)]:
        ours = design_lowpass_filter(numtaps, cutoff, width, fs)
        theirs = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-7)
    radial = design_lowpass_filter(12, 3.0, 4.0, 32, radial=True)
    assert radial.shape == (12, 12)
    torch.testing.assert_close(radial, radial.t())
    assert abs(radial.sum().item() - 1) < 1e-5
