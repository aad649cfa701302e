"""Metric code on features alone: Fréchet distance, Inception Score, CLIP similarity, MSE; and the
feature networks' loaders on the stand-in files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import _compute_fid

from model.metrics.clip_similarity import clip_similarity, video_embedding
from model.metrics.frechet import Gaussian, fit_gaussian, frechet_distance
from model.metrics.inception_score import inception_score
from model.metrics.networks import NETWORKS, SUMS_FILE, load_networks
from model.metrics.reconstruction import mse
from model.metrics.standins import write_standins

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> Path:
    return write_standins(tmp_path_factory.mktemp("standins"))


def _features(seed: int, n: int = 300, d: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mix + rng.normal(size=d)


def test_frechet_of_a_gaussian_with_itself_is_zero():
    g = fit_gaussian(_features(0))
    assert abs(frechet_distance(g, g)) < 1e-8


def test_frechet_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    got = frechet_distance(Gaussian(mu1, np.diag(s1), 0), Gaussian(mu2, np.diag(s2), 0))
    want = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert got == pytest.approx(want, rel=1e-12)


def test_frechet_agrees_with_torchmetrics_fid_on_the_same_features():
    a, b = fit_gaussian(_features(2)), fit_gaussian(_features(3) * 1.3)
    ours = frechet_distance(a, b)
    theirs = _compute_fid(*(torch.from_numpy(x) for x in (a.mu, a.sigma, b.mu, b.sigma))).item()
    assert ours > 1.0 and ours == pytest.approx(theirs, rel=1e-6)


def test_fit_gaussian_is_float64_mean_and_unbiased_covariance():
    x = _features(4, n=50, d=3).astype(np.float32)
    g = fit_gaussian(x)
    assert g.mu.dtype == np.float64 and g.count == 50
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(g.sigma, centred.T @ centred / 49, rtol=1e-12)
    with pytest.raises(ValueError, match="N >= 2"):
        fit_gaussian(x[:1])


def test_inception_score_by_hand():
    # one-hot predictions spread evenly over 4 classes: p(y) uniform, KL = log 4 for each sample
    one_hot = np.eye(4)[np.arange(40) % 4]
    assert inception_score(one_hot, splits=1)[0] == pytest.approx(4.0)
    assert inception_score(np.full((40, 7), 1 / 7), splits=10) == pytest.approx((1.0, 0.0))
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(6, 0.3), size=50)
    shuffled = p[np.random.RandomState(42).permutation(50)]
    parts = [shuffled[i * 50 // 5 : (i + 1) * 50 // 5] for i in range(5)]
    by_hand = []
    for part in parts:
        marginal = [sum(row[c] for row in part) / len(part) for c in range(6)]
        kls = [sum(r[c] * math.log(r[c] / marginal[c]) for c in range(6)) for r in part]
        by_hand.append(math.exp(sum(kls) / len(kls)))
    mean, std = inception_score(p, splits=5)
    assert mean == pytest.approx(np.mean(by_hand), rel=1e-12)
    assert std == pytest.approx(np.std(by_hand), rel=1e-9)


def test_clip_similarity_by_hand():
    rng = np.random.default_rng(6)
    frames, targets = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 4))
    videos = video_embedding(frames)
    by_hand = []
    for n in range(3):
        v = [sum(frames[n, t, d] for t in range(5)) / 5 for d in range(4)]
        dot = sum(v[d] * targets[n, d] for d in range(4))
        by_hand.append(dot / math.sqrt(sum(x * x for x in v) * sum(x * x for x in targets[n])))
    assert clip_similarity(videos, targets) == pytest.approx(sum(by_hand) / 3, rel=1e-12)
    assert clip_similarity(videos, 2 * videos) == pytest.approx(1.0)


def test_mse_by_hand():
    a, b = np.zeros((2, 3, 4, 4)), np.full((2, 3, 4, 4), 0.5)
    assert mse(a, b) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shapes differ"):
        mse(a, b[:1])


def test_standins_have_the_real_call_signatures_and_shapes(standins):
    nets, problems = load_networks(standins, list(NETWORKS), CPU)
    assert problems == [] and set(nets) == set(NETWORKS)
    videos = np.random.default_rng(7).integers(0, 256, (2, 16, 24, 24, 3), dtype=np.uint8)
    assert nets["i3d"].model(videos).shape == (2, 400)
    probs = nets["c3d"].model(videos)
    assert probs.shape == (2, 101) and np.allclose(probs.sum(1), 1)
    images = nets["inception"].model(videos[0])
    assert images.shape == (16, 1008) and np.allclose(images.sum(1), 1)
    script = nets["inception"].model.module
    x = torch.from_numpy(videos[0]).permute(0, 3, 1, 2)
    assert script(x, return_features=True).shape == (16, 2048)
    assert all(len(d) == 64 for n in nets.values() for d in n.sha256.values())


def test_lpips_is_zero_on_identical_frames_and_symmetric(standins):
    lpips = load_networks(standins, ["lpips"], CPU)[0]["lpips"].model
    a, b = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.equal(lpips(a, a), torch.zeros(3))
    d = lpips(a, b)
    assert (d > 0).all() and torch.allclose(d, lpips(b, a))


def test_a_missing_or_altered_file_is_one_line_naming_it_and_the_metrics(standins, tmp_path):
    for f in ("c3d_ucf101.pt", "inception-2015-12-05.pt", SUMS_FILE):
        (tmp_path / f).write_bytes((standins / f).read_bytes())
    with open(tmp_path / "inception-2015-12-05.pt", "ab") as f:
        f.write(b"\0")  # no longer the file SHA256SUMS lists
    nets, problems = load_networks(tmp_path, ["i3d", "inception", "c3d"], CPU)
    assert list(nets) == ["c3d"] and len(problems) == 2
    assert "i3d_torchscript.pt: no such file" in problems[0] and "skipping fvd" in problems[0]
    assert "inception-2015-12-05.pt: sha256 differs" in problems[1]
    assert problems[1].endswith("skipping is_frame")
    assert all("\n" not in p for p in problems)
    none = load_networks(None, ["lpips"], CPU)[1]
    assert none == ["alexnet-owt-7be5be79.pth: no --weights folder given; skipping recon"]
