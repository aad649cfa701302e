"""`verify` passes a sound corpus and names the damage in a broken one: flipped bytes, truncation,
a sample that does not decode to what it declares."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.corpus.verify import verify_corpus, verify_shard
from landscape_av.pipeline.shard import file_sha256
from landscape_av.schema import DATA_DIR, MAX_MEMBER_BYTES, WORK_DIR


def _members(shard: Path) -> list[tuple[tarfile.TarInfo, int]]:
    """(header, data offset) of every member of a tar."""
    with tarfile.open(shard) as tar:
        return [(info, info.offset_data) for info in tar]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))


def _first_shard(folder: Path, manifests) -> Path:
    return folder / DATA_DIR / manifests["shards"]["shard"].iloc[0]


def test_a_sound_corpus_verifies_clean(demo_corpus: Path) -> None:
    result = CliRunner().invoke(main, ["verify", str(demo_corpus), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_a_flipped_byte_in_a_member_is_named(corpus_copy: Path, manifests) -> None:
    shard = _first_shard(corpus_copy, manifests)
    for info, offset in _members(shard):
        if info.name.endswith(".mp4"):
            _flip(shard, offset + info.size // 2)
            key = info.name.split(".")[0]
            break
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "--json", "-q", "--no-decode"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    assert {"shard": shard.name, "key": "-", "member": "-"}.items() <= problems[0].items()
    named = [p for p in problems if p["key"] == key and p["member"] == "mp4"]
    assert any("sha256 differs from the sample's json" in p["message"] for p in named), problems


def test_every_single_flipped_byte_is_caught(corpus_copy: Path, manifests) -> None:
    shard = _first_shard(corpus_copy, manifests)
    shard_row = manifests["shards"].iloc[0].to_dict()
    clip_rows = manifests["clips"][manifests["clips"]["shard"] == shard.name].to_dict("records")
    pristine = shard.read_bytes()
    members = _members(shard)
    offsets = [0, 100, 148, len(pristine) - 1, len(pristine) - 1024]  # headers, end blocks
    offsets += [off + info.size - 1 for info, off in members[:4]]  # last byte of members
    offsets += [off - 512 + 130 for _, off in members[1:3]]  # header checksums
    offsets += random.Random(0).sample(range(len(pristine)), 8)
    for i, offset in enumerate(offsets):
        shard.write_bytes(pristine)
        _flip(shard, offset)
        if i < 2:  # the whole corpus, as the CLI checks it
            problems = verify_corpus(corpus_copy, decode=False)
        else:
            problems = verify_shard(shard, shard_row, clip_rows, decode=False)
        assert problems, f"flip at byte {offset} went unnoticed"
        assert all(p.shard == shard.name for p in problems)
        assert any("sha256 differs from the shards manifest" in p.message for p in problems)
        inside = [info for info, off in members if off <= offset < off + info.size]
        if inside:  # the damaged member itself is named
            key, ext = inside[0].name.split(".")
            assert any(p.key == key and p.member == ext for p in problems), (offset, problems)


def test_a_truncated_shard_names_the_missing_samples(corpus_copy: Path, manifests) -> None:
    shard = _first_shard(corpus_copy, manifests)
    data = shard.read_bytes()
    members = _members(shard)
    cut = members[len(members) // 2][1] + 10  # inside a member in the middle
    shard.write_bytes(data[:cut])
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "--no-decode", "-q"])
    assert result.exit_code == 1
    assert f"{shard.name}: {cut} bytes, the shards manifest says {len(data)}" in result.output
    clips = manifests["clips"]
    lost = [
        k
        for k, (info, off) in zip([i.name.split(".")[0] for i, _ in members], members, strict=True)
        if off + info.size > cut
    ]
    for key in dict.fromkeys(lost):
        assert key in set(clips["key"])
        assert (
            f"{shard.name}/{key}: sample listed in the clips manifest is missing" in result.output
        )


def test_a_sample_that_decodes_to_other_numbers_is_caught(tmp_path: Path, demo_corpus, manifests):
    """A json that claims one second more than its mp4 and flac hold, with every hash consistent:
    only decoding finds it."""
    source = _first_shard(demo_corpus, manifests)
    key = manifests["clips"]["key"].iloc[0]
    rows = manifests["clips"][manifests["clips"]["key"] == key].to_dict("records")
    out = tmp_path / source.name  # a shard of that one sample
    with tarfile.open(source) as tar, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as dst:
        for info in tar:
            if not info.name.startswith(f"{key}."):
                continue
            data = tar.extractfile(info).read()
            if info.name == f"{key}.json":
                meta = json.loads(data)
                meta["duration"] += 1.0
                meta["end"] += 1.0
                meta["num_frames"] = round(meta["duration"] * meta["fps"])
                meta["num_samples"] = round(meta["duration"] * meta["sample_rate"])
                data = json.dumps(meta).encode()
                row = next(r for r in rows if r["key"] == key)
                row |= {c: meta[c] for c in ("duration", "end", "num_frames", "num_samples")}
                row["sha256_json"] = hashlib.sha256(data).hexdigest()
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    shard_row = manifests["shards"].iloc[0].to_dict()
    shard_row |= {
        "samples": 1,
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    assert verify_shard(out, shard_row, rows, decode=False) == []
    problems = verify_shard(out, shard_row, rows, decode=True)
    assert {(p.key, p.member) for p in problems} == {(key, "mp4"), (key, "flac")}, problems
    assert any("decodes to" in p.message for p in problems)


@pytest.mark.parametrize("what", ["unlisted shard", "missing shard"])
def test_shards_and_manifest_must_agree(corpus_copy: Path, manifests, what: str) -> None:
    shard = _first_shard(corpus_copy, manifests)
    if what == "unlisted shard":
        (shard.parent / "train-999999.tar").write_bytes(shard.read_bytes())
        expected = "train-999999.tar: shard is not in the shards manifest"
    else:
        shard.unlink()
        expected = f"{shard.name}: shard file is missing"
    messages = [str(p) for p in verify_corpus(corpus_copy, decode=False)]
    assert expected in messages


@pytest.mark.parametrize("name", ["data/notes.txt", "manifests/extra.csv", "figures/x.png", "a.py"])
def test_a_file_no_manifest_names_is_reported(corpus_copy: Path, name: str) -> None:
    (corpus_copy / name).write_text("stray\n")
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "--json", "-q", "--no-decode"])
    assert result.exit_code == 1
    assert any(p["shard"] == name for p in json.loads(result.stdout)), result.stdout


def test_the_work_folder_is_allowed(corpus_copy: Path) -> None:
    work = corpus_copy / WORK_DIR
    (work / "damaged").mkdir(parents=True)
    (work / "build.log").write_text("log\n")
    (work / "manifests").mkdir()
    (work / "manifests" / "failures.csv").write_text("x\n")
    assert verify_corpus(corpus_copy, decode=False) == []


@pytest.mark.parametrize(
    "name",
    ["build.json", "manifests/clips.csv", "manifests/sources.parquet", "figures/loudness.png"],
)
def test_a_missing_file_is_reported_by_its_name(corpus_copy: Path, name: str) -> None:
    (corpus_copy / name).unlink()
    messages = [str(p) for p in verify_corpus(corpus_copy, decode=False)]
    assert f"{name}: missing" in messages, messages


@pytest.mark.parametrize(
    "name",
    [
        "manifests/clips.csv",
        "manifests/clips.parquet",
        "manifests/shards.parquet",
        "manifests/failures.csv",
        "build.json",
        "figures/class_balance.png",
        "README.md",
    ],
)
def test_a_flipped_byte_outside_the_shards_is_named(corpus_copy: Path, name: str) -> None:
    path = corpus_copy / name
    _flip(path, path.stat().st_size // 2)
    problems = verify_corpus(corpus_copy, decode=False)
    assert problems, f"flip in {name} went unnoticed"
    assert any(p.shard == name for p in problems), problems


def test_unsafe_member_names_and_sizes_are_named_and_not_read(tmp_path: Path) -> None:
    path = tmp_path / "train-000000.tar"
    bad = {"../x.json": "'..'", "/abs.mp4": "absolute", "..json": "'..'", "k y_00.jpg": "<key>"}
    with tarfile.open(path, "w") as tar, open("/dev/zero", "rb") as zeros:
        for name, size in [*((n, 4) for n in bad), ("big_00.mp4", MAX_MEMBER_BYTES + 1)]:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, zeros)
    row = {"bytes": path.stat().st_size, "sha256": file_sha256(path), "split": "train"}
    row["samples"] = 0
    problems = [str(p) for p in verify_shard(path, row, [], decode=False)]
    bad["big_00.mp4"] = "over the 134,217,728-byte bound"
    for problem, (name, reason) in zip(problems, bad.items(), strict=True):
        assert (
            problem.startswith(f"{path.name}: unexpected tar entry {name!r}") and reason in problem
        )


# ----------------------------------------------------------------------------------------------
# A corpus is regular files inside its folder (issue 22): links and FIFOs are named, not followed


def _move_out_and_link(corpus: Path, name: str) -> Path:
    """Move `corpus/name` outside the corpus and leave a symbolic link to it in its place."""
    outside = corpus.parent / "outside" / name.replace("/", "-")
    outside.parent.mkdir(exist_ok=True)
    (corpus / name).rename(outside)
    (corpus / name).symlink_to(outside)
    return outside


@pytest.mark.parametrize("name", ["data/train-000000.tar", "data", "manifests/clips.parquet"])
def test_a_link_out_of_the_corpus_is_named_and_not_followed(corpus_copy: Path, name: str) -> None:
    """The linked file holds exactly what the corpus needs (a link to its own shard): verify
    passed it before; a corpus that is not its own files is no corpus, whatever they hold."""
    _move_out_and_link(corpus_copy, name)
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "-q", "--no-decode"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        f"{name}: a symbolic link: a corpus is regular files inside its folder (nothing was read)"
    ]


def test_a_manifest_linked_to_another_file_is_not_printed(corpus_copy: Path) -> None:
    secret = corpus_copy.parent / "secret.txt"
    secret.write_text("user:SECRET-LINE:0:0\n" * 3)
    csv = corpus_copy / "manifests" / "sources.csv"
    csv.unlink()
    csv.symlink_to(secret)
    result = CliRunner().invoke(main, ["verify", str(corpus_copy), "--no-decode"])
    assert result.exit_code == 1 and "SECRET" not in result.output
    assert "manifests/sources.csv: a symbolic link" in result.output


@pytest.mark.slow
def test_a_fifo_in_place_of_a_shard_is_named_without_blocking(corpus_copy: Path) -> None:
    """Reading a FIFO blocks until someone writes to it: verify hung on one before."""
    import os
    import subprocess
    import sys

    shard = corpus_copy / "data" / "train-000000.tar"
    shard.unlink()
    os.mkfifo(shard)
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "verify"]
    try:
        proc = subprocess.run(
            [*cmd, str(corpus_copy), "-q", "--no-decode"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("verify blocked on the FIFO")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "data/train-000000.tar: a FIFO: a corpus is regular files inside its folder (nothing was read)"
    ]
