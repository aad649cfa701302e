"""Configs the fixtures do not cover (other resolutions, -R, conditional) against the reference ops."""

from __future__ import annotations

import pytest
import torch

from model.stylegan3 import Generator

TINY = dict(
    z_dim=32,
    w_dim=32,
    img_channels=3,
    channel_base=256,
    channel_max=32,
    mapping_kwargs={"num_layers": 2},
)


@pytest.mark.parametrize(
    "extra",
    [
        dict(c_dim=0, img_resolution=16),
        dict(c_dim=0, img_resolution=32, conv_kernel=1, use_radial_filters=True),
        dict(c_dim=5, img_resolution=16, num_layers=6, num_critical=1, conv_clamp=None),
    ],
)
def test_synthesis_matches_reference(ref, extra):
    torch.manual_seed(0)
    G = Generator(**TINY, **extra).eval().requires_grad_(False)
    for name in G.synthesis.layer_names:  # non-trivial gains and biases
        layer = getattr(G.synthesis, name)
        layer.magnitude_ema.fill_(torch.rand([]).item() + 0.5)
        layer.bias.normal_()
    G.mapping.w_avg.normal_()
    c = torch.nn.functional.one_hot(torch.arange(3) % 5, 5).float() if G.c_dim else None
    ws = G.mapping(torch.randn(3, 32), c, truncation_psi=0.5, truncation_cutoff=4)
    assert ws.shape == (3, G.num_ws, 32)
    assert torch.equal(ws[:, 4], ws[:, -1]) and not torch.equal(ws[:, 0], ws[:, -1])
    wplus = ws + 0.3 * torch.randn_like(ws)
    img = G.synthesis(wplus)
    assert img.shape == (3, 3, G.img_resolution, G.img_resolution)
    torch.testing.assert_close(img, ref.synthesis_ref(G.synthesis, wplus), atol=1e-4, rtol=1e-4)
    # Gradients reach W+ through the frozen generator.
    grads = []
    for fn in (G.synthesis, lambda w: ref.synthesis_ref(G.synthesis, w)):
        w = wplus.clone().requires_grad_(True)
        fn(w).square().sum().backward()
        grads.append(w.grad)
    assert grads[0].abs().sum() > 0
    assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 1e-3


def test_official_layer_table_at_256():
    G = Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=256,
        img_channels=3,
        channel_base=32768,
        channel_max=512,
    )
    assert G.num_ws == 16
    assert G.synthesis.layer_names == [
        "L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512", "L6_84_512",
        "L7_148_512", "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181", "L12_276_128",
        "L13_256_128", "L14_256_3",
    ]  # fmt: skip
    assert len(G.state_dict()) == 114
    assert abs(sum(p.numel() for p in G.parameters()) / 1e6 - 28.47) < 0.01
    taps = {n: getattr(G.synthesis, n).up_taps for n in G.synthesis.layer_names}
    assert [n for n, t in taps.items() if t == 24] == [
        "L3_52_512",
        "L5_84_512",
        "L7_148_512",
        "L10_276_256",
    ]
    R = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3, channel_base=65536,
                  channel_max=1024, conv_kernel=1, use_radial_filters=True)  # fmt: skip
    assert abs(sum(p.numel() for p in R.parameters()) / 1e6 - 18.82) < 0.01
    assert [getattr(R.synthesis, n).down_filter.ndim for n in R.synthesis.layer_names[:14]] == [
        2
    ] * 12 + [1, 1]


def test_bad_shapes_are_reported():
    G = Generator(c_dim=0, img_resolution=16, **TINY)
    with pytest.raises(ValueError, match=r"ws must be \[N, 16, 32\]"):
        G.synthesis(torch.zeros(1, 15, 32))
    with pytest.raises(ValueError, match=r"z must be \[N, 32\]"):
        G.mapping(torch.zeros(1, 31), None)
