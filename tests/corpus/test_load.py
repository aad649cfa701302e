"""A built corpus loads offline with `datasets` (normal and streaming) and with plain `webdataset`."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import datasets
import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from landscape_av.classes import CLASSES
from landscape_av.corpus.decode import decode_audio, decode_video, media_info
from landscape_av.schema import shard_glob


def _keys(manifests, split: str) -> list[str]:
    clips = manifests["clips"]
    return list(clips.loc[clips["split"] == split, "key"])


def test_load_dataset_by_name_from_the_working_directory(
    demo_corpus: Path, manifests, splits, hf_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo_corpus.parent)
    ds = datasets.load_dataset(demo_corpus.name, cache_dir=hf_cache)
    assert list(ds) == splits and splits[0] == "train"
    for split in splits:
        assert ds[split]["__key__"] == _keys(manifests, split)
    label = ds["train"].features["json"]["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == list(CLASSES)
    row = ds["train"][0]
    clip = manifests["clips"].set_index("key").loc[row["__key__"]]
    assert label.int2str(row["json"]["label"]) == row["json"]["class"] == clip["class"]
    assert isinstance(row["jpg"], Image.Image)
    assert isinstance(row["mp4"], bytes) and isinstance(row["flac"], bytes)


def test_decode_helper_gives_the_declared_frames_and_samples(
    demo_corpus: Path, splits, hf_cache: str
) -> None:
    row = datasets.load_dataset(str(demo_corpus), split=splits[-1], cache_dir=hf_cache)[0]
    meta = row["json"]
    video = decode_video(row["mp4"])
    assert video.frames.shape == (meta["num_frames"], meta["height"], meta["width"], 3)
    assert video.frames.dtype == np.uint8 and video.fps == pytest.approx(meta["fps"])
    assert video.times[-1] == pytest.approx((meta["num_frames"] - 1) / meta["fps"], abs=1e-3)
    audio = decode_audio(row["flac"])
    assert audio.samples.shape == (meta["channels"], meta["num_samples"])
    assert audio.sample_rate == meta["sample_rate"] and audio.samples.dtype == np.float32
    assert 0 < np.abs(audio.samples).max() <= 1.0
    torch = pytest.importorskip("torch")
    tensor = decode_audio(row["flac"], as_tensor=True).samples
    assert isinstance(tensor, torch.Tensor) and np.array_equal(tensor.numpy(), audio.samples)
    info = media_info(row["mp4"])  # the mp4 carries the sound too
    assert (info.channels, info.sample_rate) == (meta["channels"], meta["sample_rate"])


def test_streaming_yields_the_same_rows(
    demo_corpus: Path, manifests, splits, hf_cache: str
) -> None:
    streamed = datasets.load_dataset(str(demo_corpus), streaming=True, cache_dir=hf_cache)
    assert list(streamed) == splits
    for split in splits:
        rows = list(streamed[split])
        assert [r["__key__"] for r in rows] == _keys(manifests, split)
        assert all(r["json"]["split"] == split for r in rows)
    assert streamed["train"].features["json"]["label"].names == list(CLASSES)


def test_plain_webdataset_reads_the_shards(demo_corpus: Path, manifests, splits) -> None:
    for split in splits:
        urls = sorted(str(p) for p in demo_corpus.glob(shard_glob(split)))
        samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
        assert [s["__key__"] for s in samples] == _keys(manifests, split)
        first = samples[0]
        assert set(first) >= {"mp4", "flac", "json", "jpg"}
        assert first["json"]["key"] == first["__key__"]
        assert json.loads(json.dumps(first["json"]))["split"] == split


# Loading and the PyAV helper need no torchcodec. A child process checks it both with torchcodec
# blocked (`sys.modules["torchcodec"] = None` fails `import torchcodec` and `find_spec` alike, as
# where it is not installed) and, where it is installed, that loading leaves it unimported.
_LOAD_AND_DECODE_WITH_PYAV = """
import json, sys
corpus, cache, block = sys.argv[1:4]
if block == "1":
    sys.modules["torchcodec"] = None
import datasets
from landscape_av.corpus.decode import decode_audio, decode_video
out = {"torchcodec_available": datasets.config.TORCHCODEC_AVAILABLE, "splits": {}}
for split, rows in datasets.load_dataset(corpus, cache_dir=cache).items():
    row = rows[0]
    video, audio = decode_video(row["mp4"]), decode_audio(row["flac"])
    out["splits"][split] = {
        "keys": list(rows["__key__"]),
        "types": [type(row[name]).__name__ for name in ("mp4", "flac")],
        "video": [*video.frames.shape, video.fps],
        "audio": [*audio.samples.shape, audio.sample_rate],
    }
out["torchcodec_imported"] = sys.modules.get("torchcodec") is not None
if block == "1":
    try:
        rows.cast_column("mp4", datasets.Video())[0]["mp4"].metadata
        out["native"] = "decoded"
    except ImportError as err:
        out["native"] = type(err).__name__
print(json.dumps(out))
"""


@functools.cache
def _torchcodec_reason() -> str | None:
    """None where torchcodec decodes here, else why not (it loads FFmpeg only at the first decode)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    try:
        from torchcodec.decoders import AudioDecoder

        AudioDecoder(buf.getvalue()).get_all_samples()
    except Exception as err:  # noqa: BLE001 - missing package, FFmpeg libraries or a torch mismatch
        return f"torchcodec unusable here ({_summary(err)})"
    return None


def _summary(err: Exception) -> str:
    """The first line of `err`, plus the loader's own errors that torchcodec's long message holds
    (a missing FFmpeg library, an undefined symbol of another torch), without its tracebacks."""
    lines = str(err).strip().splitlines() or [""]
    causes = [
        line.strip().removeprefix("OSError: ")
        for line in lines
        if line.strip().startswith("OSError:") and "Could not load this library" not in line
    ]
    causes = list(dict.fromkeys(causes))
    tail = f" [{'; '.join(causes[:3])}{'; ...' if len(causes) > 3 else ''}]" if causes else ""
    return f"{type(err).__name__}: {lines[0].strip()[:200]}{tail}"


def _need_torchcodec() -> None:
    """Skip where torchcodec does not work here; fail instead under CI, which installs it."""
    reason = _torchcodec_reason()
    if reason is None:
        return
    reason += (
        "; install torchcodec (0.17.0 is verified with torch 2.14.1) and FFmpeg's shared libraries"
        " (Debian 12: libavdevice59 libavfilter8 libavformat59 libavcodec59 libswscale6"
        " libswresample4 libavutil57), as CI does (.ci/run, .ci/newcomer)"
    )
    if os.environ.get("LANDSCAPE_AV_REQUIRE_TORCHCODEC") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize("torchcodec", ["blocked", "installed"])
@pytest.mark.slow
def test_load_and_pyav_decoding_need_no_torchcodec(
    torchcodec: str, demo_corpus: Path, manifests, splits, hf_cache: str
) -> None:
    if torchcodec == "installed":
        _need_torchcodec()
    block = "1" if torchcodec == "blocked" else "0"
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_DECODE_WITH_PYAV, str(demo_corpus), hf_cache, block],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    clips = manifests["clips"].set_index("key")
    assert list(out["splits"]) == splits
    for split, got in out["splits"].items():
        assert got["keys"] == _keys(manifests, split)
        assert got["types"] == ["bytes", "bytes"]
        clip = clips.loc[got["keys"][0]]
        assert got["video"][:4] == [clip["num_frames"], clip["height"], clip["width"], 3]
        assert got["video"][4] == pytest.approx(clip["fps"])
        assert got["audio"] == [clip["channels"], clip["num_samples"], clip["sample_rate"]]
    assert not out["torchcodec_imported"]  # the declared features keep it out
    assert out["torchcodec_available"] == (torchcodec == "installed")
    if torchcodec == "blocked":
        assert out["native"] == "ImportError"  # the block held: `datasets` could not decode


@pytest.mark.slow
def test_native_decoding_with_torchcodec_agrees_with_the_helper(
    demo_corpus: Path, manifests, splits, hf_cache: str
) -> None:
    _need_torchcodec()
    clips = manifests["clips"].set_index("key")
    for split in splits:
        raw = datasets.load_dataset(str(demo_corpus), split=split, cache_dir=hf_cache)
        ds = raw.cast_column("mp4", datasets.Video()).cast_column("flac", datasets.Audio())
        for i, row in enumerate(ds):
            meta, clip = row["json"], clips.loc[row["__key__"]]
            video = row["mp4"].metadata
            shape = (clip["num_frames"], clip["height"], clip["width"])
            assert (meta["num_frames"], meta["height"], meta["width"]) == shape
            assert (video.num_frames, video.height, video.width) == shape
            assert video.average_fps == pytest.approx(clip["fps"])
            assert tuple(row["mp4"][0].shape) == (3, clip["height"], clip["width"])
            samples = row["flac"].get_all_samples()
            assert tuple(samples.data.shape) == (clip["channels"], clip["num_samples"])
            assert samples.sample_rate == clip["sample_rate"]
            if i:
                continue
            # The first clip of each split: every frame and sample agrees with the PyAV helper.
            helper_video = decode_video(raw[i]["mp4"])
            frames = row["mp4"].get_frames_in_range(0, video.num_frames)
            native = frames.data.permute(0, 2, 3, 1).numpy()
            assert native.shape == helper_video.frames.shape and native.dtype == np.uint8
            # Two FFmpeg builds (PyAV's own, the system's) may round the YUV->RGB step apart.
            diff = np.abs(native.astype(np.int16) - helper_video.frames.astype(np.int16))
            assert diff.mean() < 1.0, f"{row['__key__']}: mean |torchcodec - PyAV| {diff.mean()}"
            pts = frames.pts_seconds.numpy()
            assert np.allclose(pts - pts[0], helper_video.times, atol=1e-3)
            helper_audio = decode_audio(raw[i]["flac"])
            assert helper_audio.sample_rate == samples.sample_rate
            np.testing.assert_allclose(samples.data.numpy(), helper_audio.samples, atol=1e-6)


def test_a_same_named_dataset_cached_from_another_path_is_warned_of(
    demo_corpus: Path, corpus_copy: Path, hf_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from landscape_av.cli import main
    from landscape_av.corpus.hub import cache_warning

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(hf_cache))  # the user's cache
    assert cache_warning(corpus_copy) is None  # nothing cached yet
    datasets.load_dataset(str(demo_corpus))  # cached under the same name, from another path
    assert cache_warning(demo_corpus) is None  # the cached one is this folder's
    line = cache_warning(corpus_copy)
    assert line and str(demo_corpus.resolve()) in line, line
    assert f'load_dataset("{corpus_copy.resolve()}")' in line
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "-q", "--no-decode"])
    assert result.exit_code == 0 and f"warning: {line}" in result.stderr, result.stderr
