"""Metric code on features alone against closed forms and independent transcriptions (Fréchet
distance and StyleGAN-V's biased covariance, NVIDIA's and StyleGAN-V's Inception Score, CLIP
similarity, MSE), the evaluation's LPIPS-AlexNet against the `lpips` package, the protocols' frame
pickers, and the feature networks' loaders on the stand-in files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import _compute_fid

from model.metrics import protocols as P
from model.metrics.clip_similarity import clip_similarity, video_embedding
from model.metrics.frechet import Gaussian, fit_gaussian, frechet_distance
from model.metrics.inception_score import inception_score
from model.metrics.networks import NETWORKS, SUMS_FILE, load_networks
from model.metrics.source_distance import mse
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


def test_fit_gaussian_is_stylegan_v_biased_covariance_or_np_cov():
    x = _features(4, n=50, d=3).astype(np.float32)
    g = fit_gaussian(x)
    assert g.mu.dtype == np.float64 and g.count == 50
    # StyleGAN-V's FeatureStats, by hand: raw second moment / N minus the outer mean
    rows = [[float(v) for v in r] for r in x]
    mu = [sum(r[i] for r in rows) / 50 for i in range(3)]
    cov = [
        [sum(r[i] * r[j] for r in rows) / 50 - mu[i] * mu[j] for j in range(3)] for i in range(3)
    ]
    np.testing.assert_allclose(g.mu, mu, rtol=1e-12)
    np.testing.assert_allclose(g.sigma, cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        fit_gaussian(x, biased=False).sigma, np.cov(x.astype(np.float64), rowvar=False)
    )
    with pytest.raises(ValueError, match="N >= 2"):
        fit_gaussian(x[:1])


def test_fvd_of_features_is_the_closed_form_with_the_biased_covariances():
    a, b = _features(8, n=40, d=4), _features(9, n=60, d=4) * 0.7 + 1
    ga, gb = fit_gaussian(a), fit_gaussian(b)
    ca = np.cov(a.astype(np.float32).astype(np.float64), rowvar=False, bias=True)
    cb = np.cov(b.astype(np.float32).astype(np.float64), rowvar=False, bias=True)
    # Tr(sqrtm(A B)) is the sum of the square roots of the eigenvalues of A B
    root = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()
    d = ga.mu - gb.mu
    want = d @ d + np.trace(ca) + np.trace(cb) - 2 * root
    assert frechet_distance(ga, gb) == pytest.approx(want, rel=1e-9)


def test_inception_score_by_hand():
    # one-hot predictions spread evenly over 4 classes: p(y) uniform, KL = log 4 for each sample
    one_hot = np.eye(4)[np.arange(40) % 4]
    assert inception_score(one_hot, splits=1)[0] == pytest.approx(4.0)
    assert inception_score(np.full((40, 7), 1 / 7), splits=10) == pytest.approx((1.0, 0.0))
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(6, 0.3), size=50).astype(np.float32)

    def by_hand(samples):  # contiguous splits i*N//5 : (i+1)*N//5, the references' formula
        scores = []
        for i in range(5):
            part = samples[i * 50 // 5 : (i + 1) * 50 // 5]
            marginal = [sum(float(row[c]) for row in part) / len(part) for c in range(6)]
            kls = [
                sum(float(r[c]) * math.log(float(r[c]) / marginal[c]) for c in range(6))
                for r in part
            ]
            scores.append(math.exp(sum(kls) / len(kls)))
        return np.mean(scores), np.std(scores)

    # NVIDIA's frame IS: the samples in their order
    assert inception_score(p, splits=5) == pytest.approx(by_hand(p), rel=1e-9)
    # StyleGAN-V's video IS: shuffled in place by RandomState(42) first
    shuffled = p.copy()
    np.random.RandomState(42).shuffle(shuffled)
    assert inception_score(p, splits=5, shuffle=True) == pytest.approx(by_hand(shuffled), rel=1e-9)
    assert inception_score(p, splits=5) != pytest.approx(inception_score(p, 5, shuffle=True))


def test_asva_windows_and_stylegan_v_offsets():
    # 10 s at 30 fps: windows at 0, 4 and 8 s, a frame every 1/6 s (every 5th frame)
    win = P.asva_windows(300, 30.0)
    np.testing.assert_array_equal(win[:, 0], [0, 120, 240])
    np.testing.assert_array_equal(win[0], np.arange(0, 60, 5))
    assert P.asva_windows(45, 30.0) is None  # 1.5 s: shorter than a 2 s window
    assert P.asva_windows(20, 2.0) is None  # 2 fps: slower than 6 fps
    offsets = {P.clip_offset(0, f"clip{i}", 300, 16) for i in range(50)}
    assert len(offsets) > 10 and min(offsets) >= 0 and max(offsets) <= 284
    assert P.clip_offset(0, "a", 300, 16) == P.clip_offset(0, "a", 300, 16)
    assert P.consecutive(15, 16) is None and list(P.consecutive(20, 16, 4)) == list(range(4, 20))


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


def test_standins_have_the_real_call_signatures_and_shapes_and_are_marked(standins):
    nets, problems = load_networks(standins, list(NETWORKS), CPU)
    assert problems == [] and set(nets) == set(NETWORKS)
    assert all(n.standin for n in nets.values())
    names = [p.name for p in standins.iterdir()]
    real = {f for n in NETWORKS.values() for f in n.files}
    assert not real & set(names) and all(f.startswith("standin-") for f in names if f != SUMS_FILE)
    videos = np.random.default_rng(7).integers(0, 256, (2, 16, 24, 24, 3), dtype=np.uint8)
    assert nets["i3d"].model(videos).shape == (2, 400)
    assert nets["i3d"].model.prescaled(videos[:, :12]).shape == (2, 400)
    probs = nets["c3d"].model(videos)
    assert probs.shape == (2, 101) and np.allclose(probs.sum(1), 1)
    images = nets["inception"].model(videos[0])
    assert images.shape == (16, 1008) and np.allclose(images.sum(1), 1)
    script = nets["inception"].model.module
    x = torch.from_numpy(videos[0]).permute(0, 3, 1, 2)
    assert script(x, return_features=True).shape == (16, 2048)
    assert all(len(d) == 64 for n in nets.values() for d in n.sha256.values())


def test_lpips_alexnet_equals_the_lpips_package_on_the_same_backbone(tmp_path):
    import lpips

    from model.perceptual import load_alex_lpips

    torch.manual_seed(0)
    theirs = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # random AlexNet
    # the package's slices are torchvision's alexnet().features split at relu1 ... relu5
    state = {}
    for k, v in theirs.net.state_dict().items():
        state["features." + k.split(".", 1)[1]] = v
    torch.save(state, tmp_path / "alexnet.pth")
    ours = load_alex_lpips(tmp_path / "alexnet.pth")
    a, b = torch.rand(3, 3, 64, 80) * 2 - 1, torch.rand(3, 3, 64, 80) * 2 - 1
    want = theirs(a, b).flatten()
    got = ours(a, b)
    assert want.min() > 0.01
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_lpips_is_zero_on_identical_frames_and_symmetric(standins):
    lpips = load_networks(standins, ["lpips"], CPU)[0]["lpips"].model
    a, b = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    assert np.array_equal(lpips(a, a), np.zeros(3))
    d = lpips(a, b)
    assert (d > 0).all() and np.allclose(d, lpips(b, a))


def test_a_missing_or_altered_file_is_one_line_naming_it_and_the_metrics(standins, tmp_path):
    for f in ("standin-c3d-random.pt", "standin-inception-random.pt", SUMS_FILE):
        (tmp_path / f).write_bytes((standins / f).read_bytes())
    with open(tmp_path / "standin-inception-random.pt", "ab") as f:
        f.write(b"\0")  # no longer the file SHA256SUMS lists
    nets, problems = load_networks(tmp_path, ["i3d", "inception", "c3d"], CPU)
    assert list(nets) == ["c3d"] and len(problems) == 2
    assert "i3d_torchscript.pt: no such file" in problems[0] and "skipping fvd" in problems[0]
    assert "standin-inception-random.pt: sha256 differs" in problems[1]
    assert problems[1].endswith("skipping is_frame")
    assert all("\n" not in p for p in problems)
    none = load_networks(None, ["lpips"], CPU)[1]
    assert none == ["alexnet-owt-7be5be79.pth: no --weights folder given; skipping source"]


def test_stylegan3s_inception_pickle_is_named_and_refused(tmp_path):
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(b"\x80\x04N.")
    problems = load_networks(tmp_path, ["inception"], CPU)[1]
    assert len(problems) == 1 and "only inception-2015-12-05.pkl" in problems[0]
    assert "TorchScript .pt" in problems[0]


def test_a_real_file_wins_over_its_standin(standins, tmp_path):
    for f in standins.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "c3d_ucf101.pt").write_bytes((standins / "standin-c3d-random.pt").read_bytes())
    nets, _ = load_networks(tmp_path, ["c3d", "i3d"], CPU)
    assert not nets["c3d"].standin and list(nets["c3d"].sha256) == ["c3d_ucf101.pt"]
    assert nets["i3d"].standin
