"""A built corpus loads offline with `datasets` (normal and streaming) and with plain `webdataset`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from landscape_av.classes import CLASSES
from landscape_av.decode import decode_audio, decode_video, media_info
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
    assert "torchcodec" not in sys.modules  # the declared features keep it out


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


def _torchcodec_reason() -> str | None:
    """None where torchcodec decodes here, else why not."""
    try:
        from torchcodec.decoders import AudioDecoder  # noqa: F401
    except Exception as err:  # noqa: BLE001 - missing package or FFmpeg libraries
        return f"torchcodec unusable here ({type(err).__name__}: {str(err)[:120]})"
    return None


def test_native_decoding_with_torchcodec(demo_corpus: Path, hf_cache: str) -> None:
    reason = _torchcodec_reason()
    if reason:
        pytest.skip(reason + "; install torchcodec and the FFmpeg 4-7 shared libraries")
    ds = datasets.load_dataset(str(demo_corpus), split="train", cache_dir=hf_cache)
    ds = ds.cast_column("mp4", datasets.Video()).cast_column("flac", datasets.Audio())
    row = ds[0]
    meta = row["json"]
    assert row["mp4"].metadata.num_frames == meta["num_frames"]
    assert tuple(row["mp4"][0].shape) == (3, meta["height"], meta["width"])
    samples = row["flac"].get_all_samples()
    assert tuple(samples.data.shape) == (meta["channels"], meta["num_samples"])
    assert samples.sample_rate == meta["sample_rate"]
