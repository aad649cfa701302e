"""The shard loader: sparse frame sampling, step-aligned audio, batches, shuffling, bad samples.

Shards here are written with real ffmpeg (H.264 with B-frames, FLAC) and webdataset's TarWriter,
with content that tells what was decoded: frame n has grey level 2n, and the audio of a sample is
silent except for a tone during one known time step.
"""

from __future__ import annotations

import ast
import io
import json
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import webdataset as wds

from landscape_av.classes import CLASSES
from landscape_av.corpus.decode import frames_at_times
from landscape_av.ffmpeg import run_ffmpeg
from landscape_av.schema import MAX_MEMBER_BYTES, sample_key
from model.data import (
    PREPARED_MEMBERS,
    DataConfig,
    ShardError,
    check_shards,
    decode_sample,
    expand_shards,
    frame_times,
    make_loader,
    prepared_settings,
    prompt_for,
    to_float_frames,
)
from model.prepare import main as prepare_main
from model.prepare import prepare

SECONDS, FPS, STEPS = 4.0, 30, 4
CFG = DataConfig(frames=STEPS, resolution=32, n_mels=32, shuffle_buffer=8)


def _mp4(tmp: Path, gop: int | None) -> bytes:
    """4 s of 160x96 H.264 (3 B-frames) where frame n is grey 2n; keyframe every `gop` frames
    (None: x264's default, i.e. a single keyframe here)."""
    out = tmp / f"grey-{gop}.mp4"
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-pix_fmt", "yuv420p"]
    if gop is not None:
        x264 += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    src = f"nullsrc=s=160x96:r={FPS}:d={SECONDS},geq=lum='2*N':cb=128:cr=128"
    run_ffmpeg(["-f", "lavfi", "-i", src, *x264, "-movflags", "+faststart", str(out)])
    return out.read_bytes()


def _flac(tmp: Path, loud_step: int) -> bytes:
    """Stereo 44.1 kHz FLAC, silent but for a 440 Hz tone during time step `loud_step`."""
    a, b = loud_step * SECONDS / STEPS, (loud_step + 1) * SECONDS / STEPS
    tone = f"if(between(t\\,{a}\\,{b - 0.01})\\,sin(2*PI*440*t)\\,0)"
    out = tmp / f"tone-{loud_step}.flac"
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={tone}|{tone}:s=44100:d={SECONDS}", str(out)])
    return out.read_bytes()


def _meta(key: str, label: int) -> bytes:
    meta = {"key": key, "class": CLASSES[label], "label": label, "split": "train"}
    meta |= {"duration": SECONDS, "fps": float(FPS), "sample_rate": 44100, "channels": 2}
    return json.dumps(meta).encode()


@pytest.fixture(autouse=True)
def one_thread():
    """Decode in this process as a loader worker does: one torch thread (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("media")
    return {
        "aligned": _mp4(tmp, gop=FPS),  # a keyframe at every step start
        "long_gop": _mp4(tmp, gop=None),
        "flac": [_flac(tmp, step) for step in range(STEPS)],
    }


@pytest.fixture(scope="module")
def shards(media: dict, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two shards of two samples each; sample with label y has its tone in step y."""
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for s in range(2):
        path = folder / f"train-{s:06d}.tar"
        with wds.TarWriter(str(path)) as tar:
            for i in range(2):
                label = 2 * s + i
                key = sample_key(f"src{label}", 0)
                tar.write(
                    {
                        "__key__": key,
                        "mp4": media["aligned" if label % 2 else "long_gop"],
                        "flac": media["flac"][label],
                        "json": _meta(key, label),
                        "jpg": b"unused",
                    }
                )
        paths.append(path)
    return paths


def _all_frames(mp4: bytes, size: int) -> list[np.ndarray]:
    """Reference: every frame decoded in order, resized like the loader (short side, centre)."""
    out = []
    with av.open(io.BytesIO(mp4)) as container:
        for frame in container.decode(video=0):
            scale = size / min(frame.width, frame.height)
            w, h = round(frame.width * scale), round(frame.height * scale)
            rgb = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
            out.append(rgb[(h - size) // 2 :][:size, (w - size) // 2 :][:, :size])
    return out


@pytest.mark.parametrize("gop", ["aligned", "long_gop"])
def test_sparse_frames_equal_a_full_decode(media: dict, gop: str) -> None:
    reference = _all_frames(media[gop], 32)
    for times in ([0.0, 1.0, 2.0, 3.0], [0.45, 0.5, 2.9, 3.99], [3.5, 0.2]):
        got = frames_at_times(media[gop], times, 32)
        want = np.stack([reference[min(round(t * FPS), len(reference) - 1)] for t in times])
        assert got.shape == (len(times), 32, 32, 3) and got.dtype == np.uint8
        assert np.array_equal(got, want), (gop, times)
    grey = frames_at_times(media[gop], frame_times(SECONDS, STEPS), 32).mean(axis=(1, 2, 3))
    assert np.all(np.diff(grey) > 40)  # 30 frames apart: grey level up by ~60 each step


def test_a_sample_decodes_to_step_aligned_frames_and_mels(media: dict) -> None:
    raw = {"__key__": "k_00", "mp4": media["aligned"], "flac": media["flac"][2]}
    item = decode_sample(raw | {"json": _meta("k_00", 2)}, CFG)
    assert item["frames"].shape == (STEPS, 32, 32, 3) and item["frames"].dtype == torch.uint8
    n = int(SECONDS * 44100)
    assert item["mel_full"].shape == (1, 32, 1 + n // 512)
    assert item["mel"].shape == (STEPS, 1, 32, (n // STEPS) // 512)
    loudness = item["mel"].amax(dim=(1, 2, 3))
    assert loudness.argmax().item() == 2 and loudness[2] > 0.99 and loudness[0] == 0
    assert item["label"] == 2 and item["prompt"] == prompt_for(CLASSES[2])


def test_batches_hold_every_sample_once_with_the_documented_layout(shards: list[Path]) -> None:
    pattern = str(shards[0].parent / "train-{000000..000001}.tar")
    batches = list(make_loader(pattern, CFG, batch_size=2, num_workers=2, seed=3))
    assert len(batches) == 2
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == [sample_key(f"src{y}", 0) for y in range(4)]
    b = batches[0]
    assert b["frames"].shape == (2, STEPS, 32, 32, 3) and b["frames"].dtype == torch.uint8
    frames = to_float_frames(b["frames"])
    assert frames.shape == (2, STEPS, 3, 32, 32) and frames.dtype == torch.float32
    assert frames.min() >= -1.0 and frames.max() <= 1.0
    assert torch.allclose(frames[0, 0, 1], b["frames"][0, 0, ..., 1] / 127.5 - 1)  # green plane
    assert b["mel"].shape == (2, STEPS, 1, 32, (int(SECONDS * 44100) // STEPS) // 512)
    assert b["mel_full"].shape == (2, 1, 32, 1 + int(SECONDS * 44100) // 512)
    assert b["label"].dtype == torch.long
    for label, prompt, mel in zip(b["label"], b["prompt"], b["mel"], strict=True):
        assert prompt == prompt_for(CLASSES[label])
        assert mel.amax(dim=(1, 2, 3)).argmax().item() == label  # audio matches its own sample


def test_order_follows_seed_and_epoch(shards: list[Path]) -> None:
    def order(seed: int, epoch: int = 0) -> list[str]:
        loader = make_loader(shards, CFG, batch_size=1, num_workers=0, seed=seed, epoch=epoch)
        return [b["key"][0] for b in loader]

    assert order(1) == order(1)
    assert len({tuple(order(s)) for s in range(3)}) > 1
    assert len({tuple(order(1, e)) for e in range(3)}) > 1
    endless = iter(make_loader(shards, CFG, batch_size=3, num_workers=0, epochs=None))
    assert [len(next(endless)["key"]) for _ in range(3)] == [3, 3, 3]  # 9 samples from 4


def test_a_broken_sample_is_reported_by_key_and_skipped(media: dict, tmp_path: Path) -> None:
    path = tmp_path / "train-000000.tar"
    with wds.TarWriter(str(path)) as tar:
        for key, mp4 in [("good_00", media["aligned"]), ("bad_00", b"not an mp4 at all")]:
            tar.write({"__key__": key, "mp4": mp4, "flac": media["flac"][0], "json": _meta(key, 0)})
    with pytest.warns(UserWarning, match="bad_00"):
        batches = list(make_loader(path, CFG, batch_size=1, num_workers=0, shuffle=False))
    assert [b["key"] for b in batches] == [["good_00"]]


def test_shard_specs_expand_and_missing_ones_are_named(shards: list[Path]) -> None:
    folder = shards[0].parent
    assert expand_shards(str(folder / "train-*.tar")) == [str(p) for p in shards]
    assert expand_shards(str(folder / "train-{000000..000001}.tar")) == [str(p) for p in shards]
    assert expand_shards(shards[::-1]) == [str(p) for p in shards[::-1]]
    with pytest.raises(FileNotFoundError, match="train-000007.tar"):
        expand_shards([shards[0], folder / "train-000007.tar"])


def _batches(shards, cfg: DataConfig = CFG) -> list[dict]:
    return list(make_loader(shards, cfg, batch_size=2, num_workers=0, seed=5, epochs=2))


def test_prepared_shards_give_the_same_batches(shards: list[Path], tmp_path: Path) -> None:
    report = prepare(shards, tmp_path / "p", CFG, workers=2, quiet=True)
    assert (report.written, report.samples, report.failed) == (2, 4, [])
    prepared = sorted((tmp_path / "p").glob("*.tar"))
    assert [p.name for p in prepared] == [p.name for p in shards]
    direct, cached = _batches(shards), _batches(prepared)
    assert len(direct) == len(cached) == 4
    for a, b in zip(direct, cached, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            same = torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]
            assert same, k


def test_prepare_resumes_and_is_reproducible(shards: list[Path], tmp_path: Path) -> None:
    first = prepare(shards, tmp_path / "a", CFG, workers=1, quiet=True)
    done = tmp_path / "a" / shards[1].name
    done.unlink()  # as if killed during the second shard: its temporary file is left behind
    (tmp_path / "a" / f"{shards[1].name}.tmp").write_bytes(b"half a tar")
    again = prepare(shards, tmp_path / "a", CFG, workers=2, quiet=True)
    assert (first.written, again.kept, again.written) == (2, 1, 1)
    fresh = prepare(shards, tmp_path / "b", CFG, workers=2, quiet=True)
    assert fresh.written == 2
    for path in shards:
        assert (tmp_path / "a" / path.name).read_bytes() == (
            tmp_path / "b" / path.name
        ).read_bytes()
    other = DataConfig(frames=2, resolution=16, n_mels=16)
    assert prepare(shards, tmp_path / "a", other, quiet=True).written == 2  # new settings: redone


def test_prepared_shards_refuse_other_settings(shards: list[Path], tmp_path: Path) -> None:
    prepare(shards, tmp_path, CFG, workers=1, quiet=True)
    other = DataConfig(frames=STEPS, resolution=64, n_mels=32)
    with pytest.raises(
        ValueError, match=r"train-000000\.tar was prepared with resolution=32 \(run: 64\)"
    ):
        make_loader(str(tmp_path / "*.tar"), other)
    with pytest.raises(ShardError, match=r"^--shards: .*resolution=32 \(run: 64\)"):
        check_shards(str(tmp_path / "*.tar"), other)  # what the training CLIs call first
    check_shards(str(tmp_path / "*.tar"), CFG)


def test_prepare_cli_names_and_leaves_out_a_broken_sample(
    media: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "in" / "train-000000.tar"
    path.parent.mkdir()
    with wds.TarWriter(str(path)) as tar:
        for key, mp4 in [("good_00", media["aligned"]), ("bad_00", b"not an mp4 at all")]:
            tar.write({"__key__": key, "mp4": mp4, "flac": media["flac"][0], "json": _meta(key, 0)})
    argv = ["--shards", str(path), "--out", str(tmp_path / "out"), "--frames", str(STEPS)]
    assert prepare_main([*argv, "--resolution", "32", "--n-mels", "32", "--workers", "1"]) == 0
    assert "left out: sample 'bad_00'" in capsys.readouterr().err
    batches = list(make_loader(str(tmp_path / "out" / "*.tar"), CFG, batch_size=1, num_workers=0))
    assert [b["key"] for b in batches] == [["good_00"]]
    assert prepare_main(["--shards", str(tmp_path / "none-*.tar"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("Error: --shards: no shard matches")


# ----------------------------------------------------------------------------------------------
# Shards other people made: unsafe member names and sizes are refused unread and named

UNSAFE_MEMBERS = {  # name -> what the refusal says
    "../../evil.json": "'..'",
    "/abs/evil.mp4": "absolute",
    "bad key!.json": "<key>.<ext>",
    "src9_00.mp4": f"{MAX_MEMBER_BYTES + 1:,} bytes, over the",
}


def _hostile_shard(media: dict, path: Path) -> Path:
    """A shard of one good sample among the `UNSAFE_MEMBERS`, one of them a member of zeros one
    byte over the bound (a hole in the file: 128 MB that take no disk and are never read)."""
    key = sample_key("src0", 0)
    good = {"mp4": media["aligned"], "flac": media["flac"][0], "json": _meta(key, 0)}
    with open(path, "wb") as f:
        for name in UNSAFE_MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = MAX_MEMBER_BYTES + 1 if name.startswith("src9") else 9
            f.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            f.seek(-(-info.size // 512) * 512, 1)
        for ext, data in good.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            f.write(info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512))
        f.write(bytes(1024))
    return path


@pytest.mark.slow
def test_prepare_refuses_unsafe_members_unread_in_bounded_memory(
    media: dict, tmp_path: Path, guarded
) -> None:
    shard = _hostile_shard(media, tmp_path / "train-000000.tar")
    setup = f"""
from pathlib import Path
from model.data import DataConfig, shard_samples
from model.prepare import prepare
def read():
    refused = []
    return [sorted(s) for s in shard_samples({str(shard)!r}, refused.append)], refused
def prep():
    cfg = DataConfig(frames={STEPS}, resolution=32, n_mels=32)
    return prepare([{str(shard)!r}], Path({str(tmp_path / "out")!r}), cfg, workers=1, quiet=True).refused
"""
    (read, prep), changed, _ = guarded(setup, "globals()[arg]()", ["read", "prep"])
    assert read["error"] is None and read["seconds"] < 5 and read["grew"] < 500 << 20, read
    assert prep["error"] is None and prep["grew"] < 500 << 20, prep  # it also decodes a sample
    samples, refused = ast.literal_eval(read["value"])
    assert ast.literal_eval(prep["value"]) == refused and len(refused) == len(UNSAFE_MEMBERS)
    for line, (name, reason) in zip(refused, UNSAFE_MEMBERS.items(), strict=True):
        assert line.startswith(f"{shard}: {name!r}: ") and reason in line  # shard, member, reason
    assert samples == [["__key__", "__url__", "flac", "json", "mp4"]]
    with tarfile.open(tmp_path / "out" / shard.name) as tar:
        assert tar.getnames() == [f"src0_00.{m}" for m in PREPARED_MEMBERS]


def test_the_loader_skips_unsafe_members_with_a_warning_each(media: dict, tmp_path: Path) -> None:
    shard = _hostile_shard(media, tmp_path / "train-000000.tar")
    with pytest.warns(UserWarning) as warned:
        batches = list(make_loader(shard, CFG, batch_size=1, num_workers=0, shuffle=False))
    assert [b["key"] for b in batches] == [["src0_00"]]
    messages = [str(w.message) for w in warned if "shard member" in str(w.message)]
    assert len(messages) == len(UNSAFE_MEMBERS)
    for message, (name, reason) in zip(messages, UNSAFE_MEMBERS.items(), strict=True):
        assert f"{shard}: {name!r}: " in message and reason in message


def test_a_prepared_array_claiming_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (2**40, 32, 32, 3)}
    )
    info = {"meta": {"label": 0, "class": CLASSES[0]}, "num_samples": 44100}
    info["prepared"] = prepared_settings(CFG)
    sample = {
        "__key__": "k_00",
        "frames.npy": header.getvalue() + bytes(64),
        "json": json.dumps(info).encode(),
        "mel.npy": b"",
    }
    with pytest.raises(ValueError, match=r"frames\.npy: uint8 \[1099511627776, 32, 32, 3\] is not"):
        decode_sample(sample, CFG)


LOADER_AND_PREPARE = """
import contextlib, io
from model.data import shard_samples
from model.prepare import main
def read(path):
    refused = []
    try:
        return "read", sum(1 for _ in shard_samples(path, refused.append)), len(refused)
    except ValueError as e:
        return "refused", str(e), len(refused)
def prepare(path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--shards", path, "--out", {out!r}, "--workers", "1", "--quiet"])
    return code, err.getvalue()
"""


@pytest.mark.slow
def test_the_loader_and_prepare_refuse_hostile_shards_in_one_line(
    hostile_shards, tmp_path: Path, guarded
) -> None:
    """Tar header bombs (issue 22): the loader's shard reader and `model.prepare` refuse each in
    one line naming the shard and the bound, quickly, in bounded memory, writing nothing."""
    out = tmp_path / "out"
    setup = LOADER_AND_PREPARE.format(out=str(out))
    args = [str(p) for p in hostile_shards]
    read, _, _ = guarded(setup, "read(arg)", args, limit=200 << 20)
    prepared, _, _ = guarded(setup, "prepare(arg)", args, limit=200 << 20)
    for r, p in zip(read, prepared, strict=True):
        name, message = hostile_shards[Path(r["arg"])]
        outcome, text, refused = ast.literal_eval(r["value"])
        assert outcome == "refused" and text.startswith(r["arg"]) and message in text, (name, r)
        assert refused <= 100, name
        code, stderr = ast.literal_eval(p["value"])
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and r["arg"] in lines[0], (name, stderr)
        assert message in lines[0], (name, lines)
        for run in (r, p):
            assert run["seconds"] < 5 and run["grew"] < 100 << 20, (name, run)
    assert not out.exists() or not any(out.iterdir())
    assert sorted(tmp_path.iterdir()) in ([], [out])
