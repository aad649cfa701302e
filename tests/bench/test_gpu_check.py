"""bench/gpu_check.py: its CPU mode runs every step of the GPU check at tiny sizes, so the script
keeps working between the tasks that have a GPU; and the weight comparison behind its resume check."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.py"
FIXTURES = (
    Path(os.environ.get("LANDSCAPE_AV_SHARED", REPO.parent / "shared")) / "fixtures/stylegan3"
)


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_weight_comparison_finds_one_changed_element(gpu_check, tmp_path):
    torch.manual_seed(0)
    weights = {
        "latents.w": torch.randn(64, 8),
        "d_image.b": torch.randn(5),
        "generator.n": torch.arange(3),
    }
    save_file(weights, str(tmp_path / "a.safetensors"))
    save_file(weights, str(tmp_path / "same.safetensors"))
    changed = {k: v.clone() for k, v in weights.items()}
    changed["latents.w"][17, 3] += 1e-6  # one element, one part in a million
    save_file(changed, str(tmp_path / "b.safetensors"))

    same = gpu_check.compare_weights(tmp_path / "a.safetensors", tmp_path / "same.safetensors")
    assert same["identical"] and same["tensors"] == 3 and same["max_abs_diff"] == 0
    diff = gpu_check.compare_weights(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert not diff["identical"] and diff["first_differing"] == ["latents.w"]
    assert (
        diff["modules"]["latents"]["differing"] == 1
        and diff["modules"]["d_image"]["differing"] == 0
    )
    assert 0.5e-6 < diff["max_abs_diff"] < 2e-6

    del changed["generator.n"]
    save_file(changed, str(tmp_path / "c.safetensors"))
    fewer = gpu_check.compare_weights(tmp_path / "a.safetensors", tmp_path / "c.safetensors")
    assert not fewer["identical"] and fewer["only_in_one"] == ["generator.n"]


def test_the_synthesis_step_fails_where_ours_disagrees(gpu_check):
    agree = {
        "fixtures": {"t64.pt": {"agrees": True}},
        "official": {"impl": "cuda", "agrees_fp32": True},
    }
    assert gpu_check.checked_synthesis(agree) is agree
    absent = {"fixtures": {"absent": "/nowhere"}, "official": "official path not available"}
    assert gpu_check.checked_synthesis(absent) is absent
    for wrong, named in (
        (
            {"fixtures": {"t64.pt": {"agrees": False}}, "official": "official path not available"},
            "t64.pt",
        ),
        ({"fixtures": {}, "official": {"impl": "ref", "agrees_fp32": False}}, "official code (ref"),
    ):
        with pytest.raises(gpu_check.StepError, match=re.escape(named)) as e:
            gpu_check.checked_synthesis(wrong)
        assert e.value.figures is wrong  # the figures stay in the report


@pytest.mark.slow
def test_cpu_mode_runs_every_step_and_checks_what_it_reports(demo_corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "run", "--device", "cpu", "--corpus", str(demo_corpus)]
    cmd += ["--out", str(out), "--work", str(tmp_path / "work")]
    if FIXTURES.is_dir():
        cmd += ["--fixtures", str(FIXTURES)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    failed = {k: v.get("error") for k, v in steps.items() if v["status"] != "ok"}
    assert proc.returncode == 0 and report["ok"], (failed, proc.stdout[-2000:], proc.stderr[-2000:])
    assert list(steps) == [
        "inputs",
        "train",
        "resume",
        "synthesis",
        "generate",
        "evaluate",
        "networks",
    ]
    env_info = report["env"]
    assert env_info["torch"] == torch.__version__ and env_info["card"] is None
    assert env_info["date_utc"] and "gpu_check.py run --device cpu" in env_info["command"]
    assert all(step["commands"] for name, step in steps.items() if name != "inputs")

    train = steps["train"]  # 4 steps of batch 2 through torchrun, every loss logged and finite
    assert train["steps"] == 4 and train["batch"] == 2 and train["losses_finite"]
    assert train["steps_per_s"] > 0 and train["peak_rss_bytes"] > 0
    assert set(train["last_losses"]) >= {"g_total", "d_total", "clip_audio", "adv_video"}
    assert all(math.isfinite(v) for v in train["last_losses"].values())
    assert (
        "torchrun" in " ".join(train["commands"]) or "torch.distributed.run" in train["commands"][0]
    )
    assert train["world_size"] == 1 and any("NCCL" in n for n in report["notes"])

    resume = steps["resume"]  # killed mid-run, resumed from its checkpoint, bit-identical weights
    assert resume["interrupted"] and resume["resumed_at_step"] == 2
    assert "step-00000004" not in resume["left_by_the_kill"]
    same = resume["against_uninterrupted"]
    assert resume["identical"] and same["identical"] and same["differing"] == 0
    assert {"latents", "d_image", "d_video", "generator"} <= set(same["modules"])
    assert same["tensors"] > 50

    video = steps["generate"]["video"]  # 60 s of sound at the model's 0.3 frames/s, sound muxed
    assert video["frames"] == steps["generate"]["frames_expected"] == 18
    assert abs(video["audio_seconds"] - 60) < 0.5 and video["audio_codec"] == "aac"
    assert (out / "generate.mp4").is_file()

    evaluate = steps["evaluate"]
    assert evaluate["videos"] == 2 and evaluate["videos_per_s"] > 0
    assert {"model@walk", "model@render"} <= set(evaluate["rows"])
    assert {"fvd", "clip_audio"} & set(evaluate["metrics"])
    assert set(steps["networks"]["videos_per_s"]) == {
        "i3d",
        "inception",
        "c3d",
        "lpips",
        "clip",
        "sound_clip",
    }
    assert all(v > 0 for v in steps["networks"]["videos_per_s"].values())

    synthesis = steps["synthesis"]
    assert synthesis["ours"]["images_per_s"]["fp32 fwd"] > 0
    assert synthesis["official"] == "official path not available"
    if FIXTURES.is_dir():  # ours against NVIDIA's test vectors, as the GPU run checks it there
        assert synthesis["fixtures"]["t64.pt"]["agrees"]
        assert synthesis["fixtures"]["t64.pt"]["img_wplus"] < 1e-3
