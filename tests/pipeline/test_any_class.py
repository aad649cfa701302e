"""A corpus of classes outside the nine (VGGSound's, for training F_a): `build --any-class` over
127.0.0.1, its class vocabulary through build.json, `Corpus`, stats, verify, the card and
`load_dataset`, and `model.train_audio` prompting with those classes."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import torch
from click.testing import CliRunner

from landscape_av.classes import CLASSES
from landscape_av.cli import main
from landscape_av.corpus import Corpus
from landscape_av.corpus.card import card_check
from landscape_av.corpus.stats import corpus_stats
from landscape_av.corpus.verify import verify_corpus
from landscape_av.schema import shard_glob

from .conftest import write_media_list

ROWS = [  # source_id, file on the server, class, split
    ("guitar", "good.mp4", "playing acoustic guitar", "train"),
    ("dog", "good2.mp4", "dog barking", "train"),
    ("speech", "rotated.mp4", "male speech, man speaking", "test"),
]
VOCABULARY = ("dog barking", "male speech, man speaking", "playing acoustic guitar")
"""The sorted classes of ROWS: the corpus's labels index them."""
SMALL = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]


pytestmark = pytest.mark.slow  # each test builds or renders media


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("any-class") / "vggsound.csv"
    return write_media_list(path, [(i, f"{media_server}{f}", c, s) for i, f, c, s in ROWS])


@pytest.fixture(scope="module")
def corpus(source_list: Path) -> Path:
    out = source_list.parent / "corpus"
    args = ["build", "--source-list", str(source_list), "--any-class", *SMALL, "--quiet"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_other_classes_need_any_class(source_list: Path, tmp_path: Path) -> None:
    args = ["build", "--source-list", str(source_list), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--dry-run"])
    assert result.exit_code == 1
    assert f"{source_list}:2: unknown class 'playing acoustic guitar'" in result.output
    assert "--any-class" in result.output
    # with it, --classes picks among the list's own classes (a name may hold a comma)
    picked = "male speech, man speaking,dog_barking"
    result = CliRunner().invoke(main, [*args, "--any-class", "--classes", picked, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dog barking 1, male speech, man speaking 1" in " ".join(result.output.split())
    result = CliRunner().invoke(main, [*args, "--any-class", "--classes", "raining", "--dry-run"])
    assert result.exit_code == 2 and "unknown class(es) 'raining'" in result.output


def test_labels_index_the_corpus_classes_everywhere(corpus: Path) -> None:
    c = Corpus(corpus)
    assert json.loads(c.build_path.read_text())["classes"] == list(VOCABULARY)
    assert c.classes == VOCABULARY
    metas = [s.meta() for split in ("train", "test") for s in c.samples(split, ("json",))]
    assert {m["class"] for m in metas} == set(VOCABULARY)
    assert all(VOCABULARY[m["label"]] == m["class"] for m in metas)
    for name in ("sources", "clips"):
        rows = c.manifest(name)
        assert all(
            VOCABULARY[label] == cls
            for label, cls in zip(rows["label"], rows["class"], strict=True)
        )

    stats = corpus_stats(c)
    per_class = {
        r["class"]: (r["label"], r["train"]["clips"], r["test"]["clips"])
        for r in stats["per_class"]
    }
    assert per_class == {
        "dog barking": (0, 1, 0),
        "male speech, man speaking": (1, 0, 1),
        "playing acoustic guitar": (2, 2, 0),
    }
    assert verify_corpus(c) == []
    assert card_check(c) == []
    card = " ".join(c.card_path.read_text().split())
    assert "| 2 | playing acoustic guitar | 2 | 0 |" in card
    assert "in the 3 sound classes of its source list" in card  # not the Landscape prose
    assert "nature sounds" not in card and "converted by `landscape-av sources vggsound`" in card


def test_load_dataset_names_the_corpus_classes(corpus: Path, tmp_path: Path) -> None:
    ds = datasets.load_dataset(str(corpus), cache_dir=str(tmp_path / "hf-cache"))
    label = ds["train"].features["json"]["label"]
    assert label.names == list(VOCABULARY)
    for split in ("train", "test"):
        for row in ds[split]:
            assert label.int2str(row["json"]["label"]) == row["json"]["class"]


def test_train_audio_prompts_with_the_corpus_classes(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tiny CPU steps of F_a on the shards; every text prompt CLIP embeds names one of the
    corpus's classes (a fall-back to the nine would prompt 'thunderstorm' for label 0)."""
    from model.clip import FrozenClip
    from model.train_audio import main as train_audio

    prompts: list[str] = []
    encode_text = FrozenClip.encode_text

    def recording(self: FrozenClip, texts: list[str]) -> torch.Tensor:
        prompts.extend(texts)
        return encode_text(self, texts)

    monkeypatch.setattr(FrozenClip, "encode_text", recording)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        shards = str(corpus / shard_glob("train"))
        args = ["--shards", shards, "--out", str(tmp_path / "run"), "--tiny", "--quiet"]
        assert train_audio([*args, "--steps", "2", "--batch-size", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "run" / "sound_clip").is_dir()
    assert len(prompts) == 6
    named = [next((c for c in VOCABULARY if c in p), None) for p in prompts]
    assert None not in named, prompts
    assert not any(c in p for p in prompts for c in CLASSES)
    assert set(named) == {"dog barking", "playing acoustic guitar"}  # the train split's classes
