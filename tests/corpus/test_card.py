"""The dataset card: Hub metadata that validates offline, numbers that match the manifests."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard
from PIL import Image

from landscape_av.classes import CLASSES
from landscape_av.corpus import Corpus
from landscape_av.corpus.card import card_check, card_features, front_matter, write_card
from landscape_av.corpus.manifests import write_manifest
from landscape_av.corpus.stats import FIGURES, corpus_stats, write_figures
from landscape_av.schema import (
    BUILD_FILE,
    CARD_FILE,
    DATA_DIR,
    FIGURES_DIR,
    HASHED_MEMBERS,
    OPTIONAL_SAMPLE_FIELDS,
    SPLITS,
    SampleMeta,
    shard_glob,
)


def test_card_validates_offline_and_declares_everything(
    demo_corpus: Path, manifests, splits
) -> None:
    assert card_check(demo_corpus) == []
    card = DatasetCard.load(demo_corpus / CARD_FILE)
    data = card.data.to_dict()
    assert data["pretty_name"] and data["license"] and data["task_categories"]
    files = data["configs"][0]["data_files"]
    assert {f["split"]: f["path"] for f in files} == {s: shard_glob(s) for s in splits}
    declared = {s["name"]: s["num_examples"] for s in data["dataset_info"]["splits"]}
    clips = manifests["clips"]
    assert declared == {s: int((clips["split"] == s).sum()) for s in splits}
    names = [f["name"] for f in data["dataset_info"]["features"]]
    assert names == list(card_features(Corpus(demo_corpus).classes))
    assert "```python" in card.text and "load_dataset" in card.text
    assert not list(demo_corpus.glob("*.py"))


def _datasets_info(classes: list[str], optional: tuple[str, ...], splits: dict) -> dict:
    """`dataset_info` as `datasets` itself writes it, for features transcribed from the schema
    with `datasets`' own classes: the reference for the card's hand-written YAML."""
    from datasets import ClassLabel, DatasetInfo, Features, Image, SplitDict, SplitInfo, Value

    kinds = {str: "string", int: "int64", float: "float64"}
    meta = {name: Value(kinds[kind]) for name, kind in SampleMeta.__annotations__.items()
            if name not in ("label", "sha256")}  # fmt: skip
    meta["label"] = ClassLabel(names=classes)
    meta["sha256"] = {ext: Value("string") for ext in HASHED_MEMBERS}
    meta = {name: meta[name] for name in SampleMeta.__annotations__}  # the schema's order
    meta |= {name: Value(kinds[OPTIONAL_SAMPLE_FIELDS[name][0]]) for name in optional}
    features = Features(
        {"mp4": Value("binary"), "flac": Value("binary"), "json": meta, "jpg": Image(),
         "__key__": Value("string"), "__url__": Value("string")}
    )  # fmt: skip
    split_dict = SplitDict()
    for name, (nbytes, clips) in splits.items():
        split_dict.add(SplitInfo(name=name, num_bytes=nbytes, num_examples=clips))
    total = sum(nbytes for nbytes, _ in splits.values())
    info = DatasetInfo(
        features=features, splits=split_dict, download_size=total, dataset_size=total
    )
    return info._to_yaml_dict()


@pytest.mark.parametrize("optional", [(), tuple(OPTIONAL_SAMPLE_FIELDS)])
@pytest.mark.parametrize(
    "splits", [{"train": (5_000, 3)}, {"train": (9_000, 7), "test": (1_200, 1)}]
)
def test_the_cards_features_and_splits_are_what_datasets_writes(
    optional: tuple[str, ...], splits: dict
) -> None:
    """The card writes its `dataset_info` itself (importing `datasets` costs a build half a
    CPU-second): the same YAML, key order included, as `datasets` writes for the same features
    and splits, and the same `Features` once `datasets` reads it back."""
    classes = ["rain", "wind", "thunder"]
    per_split = {s: {"bytes": 0, "clips": 0, "shards": 0} for s in SPLITS}
    per_split |= {s: {"bytes": b, "clips": c, "shards": 1} for s, (b, c) in splits.items()}
    stats = {"per_split": per_split, "totals": {"bytes": sum(b for b, _ in splits.values()),
                                                "clips": sum(c for _, c in splits.values())}}  # fmt: skip
    ours = front_matter(stats, ["cc0-1.0"], classes, "classes", optional)["dataset_info"]
    reference = _datasets_info(classes, optional, splits)
    dump = lambda d: yaml.safe_dump(d, sort_keys=False, allow_unicode=True)  # noqa: E731
    assert dump(ours) == dump(reference)
    from datasets import Features

    assert card_features(classes, optional) == Features._from_yaml_list(reference["features"])


def test_card_numbers_come_from_the_manifests(demo_corpus: Path, manifests) -> None:
    text = (demo_corpus / CARD_FILE).read_text()
    clips, failures, sources = manifests["clips"], manifests["failures"], manifests["sources"]
    for label, name in enumerate(CLASSES):
        row = re.search(rf"^\| {label} \| {name} \| (\d+) \| (\d+) \|", text, re.M)
        assert row, f"no table row for {name}"
        of = clips["class"] == name
        counts = [int((of & (clips["split"] == s)).sum()) for s in SPLITS]
        assert [int(row[1]), int(row[2])] == counts
    for reason, n in failures.groupby(["stage", "reason"]).size().items():
        assert f"| {reason[0]}/{reason[1]} | {n} |" in text
    for source_id in sources.loc[sources["source_id"].isin(clips["source_id"]), "source_id"]:
        assert f"[{source_id}](" in text  # attribution of every source used
    for name in FIGURES:
        assert f"(figures/{name}.png)" in text
        assert (demo_corpus / FIGURES_DIR / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_the_example_row_and_byte_counts_come_from_the_data(demo_corpus: Path, manifests) -> None:
    text = (demo_corpus / CARD_FILE).read_text()
    first = next(Corpus(demo_corpus).samples("train", members=("json",))).meta()
    assert f"# {first['class']!r}, {first['label']} (a ClassLabel)" in text
    assert f'"key": "{first["key"]}"' in text  # the json shown is that sample's
    data = DatasetCard.load(demo_corpus / CARD_FILE).data.to_dict()
    shards = manifests["shards"]
    declared = {s["name"]: s["num_bytes"] for s in data["dataset_info"]["splits"]}
    assert declared == {s: int(shards.loc[shards["split"] == s, "bytes"].sum()) for s in declared}
    assert all(n > 0 for n in declared.values())
    assert data["dataset_info"]["download_size"] == int(shards["bytes"].sum())


def test_the_demo_card_says_synthetic_and_a_real_build_gets_the_nature_card(
    corpus_copy: Path,
) -> None:
    demo = (corpus_copy / CARD_FILE).read_text()
    assert (
        "synthetic" in demo and "demo" in DatasetCard.load(corpus_copy / CARD_FILE).data.pretty_name
    )
    for claim in ("VGGSound", "nature-sounds", "natural scenes", "third-party videos"):
        assert claim not in demo, claim
    record = json.loads((corpus_copy / BUILD_FILE).read_text())
    record["manifest"] = "my-sources.csv"  # the same corpus, as built from a source list
    (corpus_copy / BUILD_FILE).write_text(json.dumps(record))
    write_card(corpus_copy)
    real = (corpus_copy / CARD_FILE).read_text()
    assert "@inproceedings{chen2020vggsound" in real and "nature-sounds" in real
    assert "synthetic" not in real
    assert card_check(corpus_copy) == []


@pytest.mark.slow
def test_the_demo_puts_every_class_in_both_splits(full_demo_corpus: Path) -> None:
    clips = Corpus(full_demo_corpus).manifests()["clips"]
    for split in SPLITS:
        assert set(clips.loc[clips["split"] == split, "class"]) == set(CLASSES), split
    # and still by source: no source in both
    assert (clips.groupby("source_id")["split"].nunique() == 1).all()


def test_an_empty_corpus_plots_say_so_without_warnings(corpus_copy: Path) -> None:
    for name in ("clips", "shards"):
        write_manifest(corpus_copy, name, [])
    for shard in (corpus_copy / DATA_DIR).glob("*.tar"):
        shard.unlink()
    corpus = Corpus(corpus_copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would reach the user's terminal
        paths = write_figures(corpus, corpus_stats(corpus))
    for name in ("class_balance", "loudness", "motion", "shard_sizes"):
        with Image.open(paths[name]) as img:  # the one-line "no clips" panel, not empty axes
            assert img.size == (600, 200), name


def test_card_is_reproducible(corpus_copy: Path, demo_corpus: Path) -> None:
    write_card(corpus_copy)
    assert (corpus_copy / CARD_FILE).read_bytes() == (demo_corpus / CARD_FILE).read_bytes()
    for name in FIGURES:
        png = f"{FIGURES_DIR}/{name}.png"
        assert (corpus_copy / png).read_bytes() == (demo_corpus / png).read_bytes(), png


@pytest.mark.parametrize("damage", ["count", "glob", "feature", "yaml", "script", "figure"])
def test_card_check_names_what_is_wrong(corpus_copy: Path, damage: str) -> None:
    path = corpus_copy / CARD_FILE
    text = path.read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    if damage == "count":
        meta["dataset_info"]["splits"][0]["num_examples"] += 1
    elif damage == "glob":
        meta["configs"][0]["data_files"][0]["path"] = "data/training-*.tar"
    elif damage == "feature":
        meta["dataset_info"]["features"][0]["dtype"] = "video"
    if damage == "yaml":
        path.write_text("---\npretty_name: [unclosed\n---\n" + body)
    else:
        path.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body)
    if damage == "script":
        (corpus_copy / "landscape-av.py").write_text("import datasets\n")
    if damage == "figure":
        (corpus_copy / FIGURES_DIR / "motion.png").unlink()
    expected = {
        "count": "declares",
        "glob": "matches no file",
        "feature": "features differ",
        "yaml": "does not parse",
        "script": "no loading scripts",
        "figure": "figures/motion.png",
    }[damage]
    problems = card_check(corpus_copy)
    assert any(expected in p for p in problems), problems


CARD_CHECKS = """
import json
print(json.dumps({
    "rows": ds.num_rows,
    "streamed": next(iter(streamed["train"]))["__key__"] == ds["train"][0]["__key__"],
    "frames": list(video.frames.shape),
    "fps": video.fps,
    "audio": [list(audio.samples.shape), audio.sample_rate],
    "last": sample["__key__"],
}))
"""
"""Appended to the card's blocks: what they made, for the test to check."""


@pytest.mark.slow
def test_every_python_block_of_the_card_runs(corpus_copy: Path, manifests, tmp_path: Path) -> None:
    """The card's Python blocks, in order, as one script in a fresh Python in the corpus folder
    (where the card says to run them), offline, with a cache of its own: they run, and what they
    load is the corpus."""
    import subprocess
    import sys

    text = (corpus_copy / CARD_FILE).read_text()
    blocks = re.findall(r"^```python\n(.*?)^```\n", text, re.S | re.M)
    assert len(blocks) == 3, blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks) + CARD_CHECKS],
        cwd=corpus_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    clips = manifests["clips"]
    assert got["rows"] == {s: int((clips["split"] == s).sum()) for s in SPLITS}
    assert got["streamed"] and got["frames"] == [300, 180, 320, 3] and got["fps"] == 30
    assert got["audio"] == [[2, 441_000], 44_100]
    assert got["last"] == clips.loc[clips["split"] == "train", "key"].iloc[-1]
