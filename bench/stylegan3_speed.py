"""CPU speed of `model.stylegan3` against the straightforward official-equivalent path, same run.

    python bench/stylegan3_speed.py [--threads 2] [--fixtures ../shared/fixtures/stylegan3]

1. The fixtures' workloads (t64, r64: mapping twice, four syntheses of 4 images, one synthesis of
   4 images with backward to W+), reference (tests/stylegan3/reference.py: per-sample weights and
   grouped conv, zero-insertion upsampling, full-rate filtering) vs ours, outputs compared.
2. Images/s forward and forward+backward (to W+) at 64, 128 and 256 with full StyleGAN3-T
   channels (channel_base 32768, channel_max 512), ours and reference.
Each timing is the best of `--fixture-repeats` (workloads) or `--repeats` runs, interleaved, so
machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

from model.stylegan3 import Generator

REPO = Path(__file__).resolve().parents[1]


def load_reference():
    spec = importlib.util.spec_from_file_location(
        "stylegan3_reference", REPO / "tests/stylegan3/reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(fns: dict, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def fixture_workload(G, synthesis, d) -> torch.Tensor:
    with torch.no_grad():
        G.mapping(d["z"], None)
        G.mapping(d["z"], None, truncation_psi=0.7)
        for code in ("ws", "ws_trunc_0.7", "wplus", "ws"):
            img = synthesis(d[code])
    w = d["wplus"].clone().requires_grad_(True)
    (synthesis(w) * d["grad_proj"]).sum().backward()
    return img


def speed(G, synthesis, n: int, backward: bool) -> None:
    ws = G.mapping(torch.randn(n, G.z_dim), None).detach()
    if backward:
        ws.requires_grad_(True)
        synthesis(ws).square().mean().backward()
    else:
        with torch.no_grad():
            synthesis(ws)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fixture-repeats", type=int, default=3, help="repeats of the workloads")
    parser.add_argument("--fixtures", type=Path, default=REPO.parent / "shared/fixtures/stylegan3")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument(
        "--skip-reference-at",
        type=int,
        default=256,
        help="no reference timing from this resolution up",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = load_reference()
    print(f"torch {torch.__version__}, {args.threads} threads")

    for name in ("t64", "r64"):
        bench_fixture(ref, args.fixtures / f"{name}.pt", args.fixture_repeats)
    for res in args.resolutions:
        bench_resolution(ref, res, args.repeats if res < 256 else 1, res < args.skip_reference_at)


def bench_fixture(ref, path: Path, repeats: int) -> None:
    if not path.is_file():
        print(f"{path}: absent, skipped")
        return
    d = torch.load(path, weights_only=True)
    G = Generator(**json.loads(d["init_kwargs"])).eval().requires_grad_(False)
    G.load_state_dict(d["state_dict"])

    def reference(ws):
        return ref.synthesis_ref(G.synthesis, ws)

    fns = {
        "reference": lambda: fixture_workload(G, reference, d),
        "ours": lambda: fixture_workload(G, G.synthesis, d),
    }
    t = best_of(fns, repeats)
    with torch.no_grad():
        diff = (G.synthesis(d["ws"]) - reference(d["ws"])).abs().max().item()
    print(
        f"{path.stem} workload: reference {t['reference']:.2f} s, ours {t['ours']:.2f} s, "
        f"speed-up {t['reference'] / t['ours']:.1f}x (max |diff| {diff:.1e})"
    )


def bench_resolution(ref, res: int, repeats: int, with_reference: bool) -> None:
    torch.manual_seed(0)
    G = (
        Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3)
        .eval()
        .requires_grad_(False)
    )
    n = {64: 4, 128: 2}.get(res, 1)

    def reference(ws):
        return ref.synthesis_ref(G.synthesis, ws)

    fns = {}
    for mode in ("fwd", "fwd+bwd"):
        fns[f"ours {mode}"] = lambda m=mode: speed(G, G.synthesis, n, m == "fwd+bwd")
        if with_reference:
            fns[f"reference {mode}"] = lambda m=mode: speed(G, reference, n, m == "fwd+bwd")
    t = best_of(fns, repeats)
    print(
        f"{res}x{res} (T, 512 ch, batch {n}): "
        + ", ".join(f"{k} {n / v:.3g} img/s" for k, v in t.items())
    )
    for mode in ("fwd", "fwd+bwd"):
        if f"reference {mode}" in t:
            print(f"  {mode} speed-up {t[f'reference {mode}'] / t[f'ours {mode}']:.1f}x")


if __name__ == "__main__":
    main()
