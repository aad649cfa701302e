"""D_I and D_V: shapes, a really temporal D_V, gradients."""

from __future__ import annotations

import torch

from model.discriminators import DiscriminatorConfig, ImageDiscriminator, VideoDiscriminator

TINY = DiscriminatorConfig(ndf=8, n_layers=3, video_scales=2)


def test_image_discriminator_scores_patches():
    torch.manual_seed(0)
    d = ImageDiscriminator(TINY)
    out = d(torch.randn(3, 3, 32, 32))
    assert out.dim() == 4 and out.shape[:2] == (3, 1) and out.shape[-1] > 1


def test_video_discriminator_has_two_scales_of_real_3d_kernels():
    torch.manual_seed(0)
    d = VideoDiscriminator(DiscriminatorConfig())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(d.scales) == 2 and convs[0].out_channels == 64
    assert all(c.kernel_size == (4, 4, 4) for c in convs)
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in d.modules())


def test_video_discriminator_sees_frame_order():
    """Shuffling frames changes D_V's scores (it mixes time); D_I on single frames cannot tell."""
    torch.manual_seed(0)
    d = VideoDiscriminator(TINY).eval()
    clip = torch.randn(2, 6, 3, 16, 16)
    outs = d(clip)
    assert [o.shape[:2] for o in outs] == [(2, 1), (2, 1)]
    shuffled = d(clip[:, torch.tensor([5, 2, 0, 4, 1, 3])])
    assert not torch.allclose(outs[0].mean(dim=2), shuffled[0].mean(dim=2))


def test_gradients_reach_input_and_weights():
    torch.manual_seed(0)
    d_i, d_v = ImageDiscriminator(TINY), VideoDiscriminator(TINY)
    clip = torch.randn(1, 4, 3, 16, 16, requires_grad=True)
    loss = d_i(clip.flatten(0, 1)).mean() + sum(o.mean() for o in d_v(clip))
    loss.backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0
    assert all(p.grad is not None for p in [*d_i.parameters(), *d_v.parameters()])
