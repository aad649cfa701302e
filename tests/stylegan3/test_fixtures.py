"""Agreement with NVIDIA's official generator on its test vectors (../shared/fixtures/stylegan3)."""

from __future__ import annotations

import json

import pytest
import torch

from model.stylegan3 import Generator
from model.stylegan3.filtered_lrelu import design_lowpass_filter


@pytest.fixture(scope="module", params=["t64", "r64"])
def vectors(request, shared_dir):
    path = shared_dir / "fixtures" / "stylegan3" / f"{request.param}.pt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    d = torch.load(path, weights_only=True)
    G = Generator(**json.loads(d["init_kwargs"])).eval().requires_grad_(False)
    designed = {k: v.clone() for k, v in G.state_dict().items() if k.endswith("_filter")}
    G.load_state_dict(d["state_dict"], strict=True)
    return d, G, designed


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-3) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < tol


def test_filters_are_designed_like_the_official_ones(vectors):
    d, _, designed = vectors
    official = {k: v for k, v in d["state_dict"].items() if k.endswith("_filter")}
    assert designed.keys() == official.keys()
    for k, v in official.items():
        assert_close(designed[k], v, 1e-6)
    assert design_lowpass_filter(1, 2.0, 1.0, 16) is None


def test_mapping_with_and_without_truncation(vectors):
    d, G, _ = vectors
    with torch.no_grad():
        assert_close(G.mapping(d["z"], None), d["ws"])
        assert_close(G.mapping(d["z"], None, truncation_psi=0.7), d["ws_trunc_0.7"])


@pytest.mark.parametrize(
    "code,image", [("ws", "img"), ("ws_trunc_0.7", "img_trunc_0.7"), ("wplus", "img_wplus")]
)
@pytest.mark.slow
def test_synthesis(vectors, code, image):
    d, G, _ = vectors
    with torch.no_grad():
        img = G.synthesis(d[code])
    assert_close(img, d[image])
    assert img.dtype == torch.float32 and img.is_contiguous()


def test_synthesis_with_input_transform(vectors):
    d, G, _ = vectors
    G.synthesis.input.transform.copy_(d["input_transform"])
    try:
        with torch.no_grad():
            assert_close(G.synthesis(d["ws"]), d["img_transform"])
    finally:
        G.synthesis.input.transform.copy_(torch.eye(3))


def test_gradient_to_wplus(vectors):
    d, G, _ = vectors
    wplus = d["wplus"].clone().requires_grad_(True)
    (G.synthesis(wplus) * d["grad_proj"]).sum().backward()
    err = (wplus.grad - d["grad_wplus"]).norm() / d["grad_wplus"].norm()
    assert err.item() < 1e-3
