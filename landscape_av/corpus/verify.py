"""`verify`: check a built corpus byte by byte against its manifests, and decode every sample.

For every shard: present, listed, of the listed size and sha256; a readable tar whose samples are
exactly the clips the manifest puts in it, in order, each with the members `schema.MEMBERS`. For
every sample: member hashes against its json and the clips manifest, json fields against the
manifest, and a full decode (mp4 video and audio, flac, jpg) with the declared frame count, size,
frame rate, sample count, rate and channels. Then the rest of the folder: each manifest's csv
against its parquet, the dataset card (valid, and exactly what the manifests give) and the sha256
of the files it lists (build.json, manifests, figures). And the folder itself: each file the layout
names (`schema.CORPUS_ENTRIES`, the manifests, the figures, the listed shards) that is missing, and
each file it does not name (the work folder `.work/` is allowed). Every problem names its shard
(or file), key and member.

A corpus is regular files inside its folder: a symbolic link (a shard, `data/`, a manifest linked
to a file elsewhere), a FIFO or a device in it is named (`irregular_entries`) and nothing of the
corpus is read, so verify never vouches for, or prints, what lies outside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from landscape_av.corpus.card import card_check, card_checksums, file_checksums, render_card
from landscape_av.corpus.corpus import Corpus, read_shard
from landscape_av.corpus.decode import media_info
from landscape_av.corpus.manifests import read_manifest_csv
from landscape_av.corpus.stats import figure_paths
from landscape_av.files import file_sha256
from landscape_av.schema import (
    BUILD_FILE,
    CARD_FILE,
    CORPUS_ENTRIES,
    DATA_DIR,
    FIGURES_DIR,
    HASHED_MEMBERS,
    MANIFEST_DIR,
    MANIFESTS,
    MEMBERS,
    OPTIONAL_SAMPLE_FIELDS,
    WORK_DIR,
    SampleMeta,
    manifest_columns,
)

AAC_FRAME = 1024
"""Audio samples in one AAC frame: the mp4's audio track may differ from the flac by less."""

META_COLUMNS = tuple(
    field
    for field in SampleMeta.__annotations__
    if field in manifest_columns("clips") and field not in ("key", "loudness_db", "motion")
)
"""Sample json fields that must equal the clip's row in the clips manifest: all the two share but
the key (checked against the member names) and the measurements `loudness_db` and `motion`; the
`OPTIONAL_SAMPLE_FIELDS` that the manifest has are compared too."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (`shard` file, sample `key`, `member` extension; "-" where it does not
    apply) and what."""

    shard: str
    key: str
    member: str
    message: str

    def __str__(self) -> str:
        where = "/".join(p for p in (self.shard, self.key, self.member) if p != "-")
        return f"{where}: {self.message}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_media(
    key: str, members: dict[str, bytes], meta: dict[str, Any], report: Callable
) -> None:
    """Decode mp4, flac and jpg; compare what decodes with what the json declares."""
    from PIL import Image

    fps, rate = float(meta["fps"]), int(meta["sample_rate"])
    if meta["num_frames"] != round(meta["duration"] * fps):
        report(key, "json", f"num_frames {meta['num_frames']} != duration x fps")
    if meta["num_samples"] != round(meta["duration"] * rate):
        report(key, "json", f"num_samples {meta['num_samples']} != duration x sample_rate")
    try:
        v = media_info(members["mp4"])
    except Exception as err:  # noqa: BLE001 - any decoder failure is the finding
        report(key, "mp4", f"does not decode: {err}")
    else:
        expected = (meta["num_frames"], meta["width"], meta["height"], meta["channels"], rate)
        found = (v.video_frames, v.width, v.height, v.channels, v.sample_rate)
        if found != expected:
            report(
                key,
                "mp4",
                f"decodes to {v.video_frames} frames {v.width}x{v.height}, audio {v.channels} ch "
                f"{v.sample_rate} Hz; json says {expected[0]} frames {expected[1]}x{expected[2]}, "
                f"{expected[3]} ch {expected[4]} Hz",
            )
        if not math.isclose(v.fps, fps, rel_tol=1e-3):
            report(key, "mp4", f"frame rate {v.fps:g} != {fps:g}")
        if abs(v.audio_samples - meta["num_samples"]) >= AAC_FRAME:
            report(key, "mp4", f"{v.audio_samples} audio samples, expected {meta['num_samples']}")
    try:
        a = media_info(members["flac"])
    except Exception as err:  # noqa: BLE001
        report(key, "flac", f"does not decode: {err}")
    else:
        found = (a.audio_samples, a.sample_rate, a.channels)
        expected = (meta["num_samples"], rate, meta["channels"])
        if found != expected:
            report(key, "flac", f"decodes to {found} (samples, Hz, channels); json says {expected}")
    try:
        with Image.open(io.BytesIO(members["jpg"])) as img:
            img.load()
    except Exception as err:  # noqa: BLE001
        report(key, "jpg", f"does not decode: {err}")


def _check_sample(
    key: str,
    members: dict[str, bytes],
    row: dict[str, Any] | None,
    split: str,
    decode: bool,
    report: Callable,
    classes: Sequence[str] | None,
) -> None:
    if set(members) != set(MEMBERS):
        missing, extra = sorted(set(MEMBERS) - set(members)), sorted(set(members) - set(MEMBERS))
        report(key, "-", f"members {sorted(members)}: missing {missing}, unexpected {extra}")
    if row is None:
        report(key, "-", "sample is not in the clips manifest for this shard")
    if "json" not in members:
        return
    if row is not None and _sha(members["json"]) != row["sha256_json"]:
        report(key, "json", "sha256 differs from the clips manifest")
    try:
        meta = json.loads(members["json"])
    except ValueError as err:
        report(key, "json", f"not valid JSON: {err}")
        return
    hashes = meta.get("sha256") or {}
    for ext in HASHED_MEMBERS:
        if ext not in members:
            continue
        digest = _sha(members[ext])
        if digest != hashes.get(ext):
            report(key, ext, "sha256 differs from the sample's json")
        if row is not None and digest != row[f"sha256_{ext}"]:
            report(key, ext, "sha256 differs from the clips manifest")
    if meta.get("key") != key or meta.get("split") != split:
        report(key, "json", f"key/split {meta.get('key')!r}/{meta.get('split')!r} do not match")
    label = meta.get("label")
    if classes is not None and (
        label not in range(len(classes)) or classes[label] != meta.get("class")
    ):
        report(key, "json", f"label {meta.get('label')!r} and class {meta.get('class')!r} disagree")
    if row is not None:
        for column in META_COLUMNS + tuple(c for c in OPTIONAL_SAMPLE_FIELDS if c in row):
            if meta.get(column) != row[column]:
                report(key, "json", f"{column} {meta.get(column)!r} != manifest {row[column]!r}")
    if decode and set(MEMBERS) <= set(members):
        try:
            _check_media(key, members, meta, report)
        except (KeyError, TypeError, ValueError) as err:
            report(key, "json", f"missing or malformed field: {err}")


def verify_shard(
    path: Path,
    shard_row: dict[str, Any],
    clip_rows: list[dict[str, Any]],
    decode: bool = True,
    classes: Sequence[str] | None = None,
) -> list[Problem]:
    """Every problem of one shard, given its shards-manifest row, its clips-manifest rows and the
    corpus's class vocabulary (`Corpus.classes`; None: labels are not checked against one), in
    which each sample's label must name its class."""
    problems: list[Problem] = []

    def report(key: str, member: str, message: str) -> None:
        problems.append(Problem(path.name, key, member, message))

    if not path.is_file():
        report("-", "-", "shard file is missing")
        return problems
    size, digest = path.stat().st_size, file_sha256(path)
    if size != shard_row["bytes"]:
        report("-", "-", f"{size} bytes, the shards manifest says {shard_row['bytes']}")
    if digest != shard_row["sha256"]:
        report("-", "-", "sha256 differs from the shards manifest")
    hash_problem = len(problems)
    expected = {row["key"]: row for row in clip_rows}
    seen: list[str] = []
    for sample in read_shard(path, report=report):
        key = sample.key
        if key in seen:
            report(key, "-", "key appears twice in the shard")
        seen.append(key)
        row = expected.get(key)
        _check_sample(key, sample.members, row, shard_row["split"], decode, report, classes)
    for key in expected:
        if key not in seen:
            report(key, "-", "sample listed in the clips manifest is missing from the shard")
    if seen and [k for k in seen if k in expected] != [k for k in expected if k in seen]:
        report("-", "-", "samples are not in the manifest's order")
    if len(seen) != shard_row["samples"]:
        report("-", "-", f"{len(seen)} samples, the shards manifest says {shard_row['samples']}")
    if digest != shard_row["sha256"] and len(problems) == hash_problem:
        report("-", "-", "every member is intact: the damage is in tar headers or padding")
    return problems


def _verify_one(args: tuple[Path, dict, list[dict], bool, tuple[str, ...] | None]) -> list[Problem]:
    return verify_shard(*args)


def verify_corpus(
    folder: Corpus | Path,
    *,
    decode: bool = True,
    workers: int = 1,
    on_shard: Callable[[str, int], None] | None = None,
) -> list[Problem]:
    """Every problem of the corpus in `folder`; `on_shard(name, samples)` after each shard."""
    corpus = Corpus.of(folder)
    corpus.fetch()
    irregular = irregular_entries(corpus)
    if irregular:  # nothing is read through a link or from a FIFO
        return irregular
    m, problems = {}, []
    for name in MANIFESTS:
        if not corpus.manifest_path(name).is_file():
            continue  # folder_problems names it
        try:
            m[name] = corpus.manifest(name)
        except (OSError, ValueError) as err:  # pyarrow's errors derive from these
            where = f"{MANIFEST_DIR}/{name}.parquet"
            problems.append(Problem(where, "-", "-", f"unreadable: {err}".strip()))
    problems.extend(folder_problems(corpus))
    if len(m) < len(MANIFESTS):  # without the manifests there is nothing to check shards against
        return problems + card_problems(corpus, compare_text=False)
    try:
        classes: tuple[str, ...] | None = corpus.classes
    except ValueError as err:  # damaged build.json: the card's checksum of it names it too
        classes = None
        problems.append(Problem(BUILD_FILE, "-", "-", f"unreadable, labels unchecked: {err}"))
    shards, clips = m["shards"], m["clips"]
    listed = set(shards["shard"])
    for key in clips.loc[~clips["shard"].isin(listed), "key"]:
        problems.append(Problem("-", key, "-", "clip's shard is not in the shards manifest"))
    rows = clips.to_dict("records")
    jobs = [
        (
            corpus.data_dir / s["shard"],
            s,
            [r for r in rows if r["shard"] == s["shard"]],
            decode,
            classes,
        )
        for s in shards.to_dict("records")
    ]
    with ProcessPoolExecutor(workers) if workers > 1 else _Inline() as pool:
        for job, found in zip(jobs, pool.map(_verify_one, jobs), strict=True):
            problems.extend(found)
            if on_shard:
                on_shard(job[1]["shard"], int(job[1]["samples"]))
    problems.extend(manifest_problems(corpus))
    problems.extend(card_problems(corpus, compare_text=not problems))
    return problems


KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def irregular_entries(folder: Corpus | Path) -> list[Problem]:
    """Each entry of the corpus folder, at its top or in `data/`, `manifests/`, `figures/` (the
    entries a reader opens), that is not a regular file or folder inside it: a symbolic link
    (followed, it would make verify check or print files elsewhere), a FIFO (which would block a
    reader), a device or a socket. `.work/` is the build's, and not looked into."""
    root = Corpus.of(folder).folder
    problems = []
    for top in sorted(os.scandir(root), key=lambda e: e.name):
        if top.name == WORK_DIR:
            continue
        entries = [(top.name, top)]
        if top.name in (DATA_DIR, MANIFEST_DIR, FIGURES_DIR) and top.is_dir(follow_symlinks=False):
            inside = sorted(os.scandir(top), key=lambda e: e.name)
            entries += [(f"{top.name}/{e.name}", e) for e in inside]
        for name, entry in entries:
            kind = KINDS.get(stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode))
            if kind:
                message = f"{kind}: a corpus is regular files inside its folder (nothing was read)"
                problems.append(Problem(name, "-", "-", message))
    return problems


def folder_problems(folder: Corpus | Path) -> list[Problem]:
    """Each file of the corpus layout that is missing, and each file in the folder that neither the
    layout nor the shards manifest names (`.work/` is the build's, and not looked into)."""
    corpus = Corpus.of(folder)
    root = corpus.folder
    problems = [
        Problem(p.name, "-", "-", "no part of a corpus: the layout names no such entry")
        for p in sorted(root.iterdir())
        if p.name not in CORPUS_ENTRIES
    ]
    problems += [
        Problem(name, "-", "-", "missing")
        for name in (BUILD_FILE,)  # the card's absence is card_check's to report
        if not (root / name).is_file()
    ]
    expected = {
        MANIFEST_DIR: {f"{name}.{fmt}" for name in MANIFESTS for fmt in ("parquet", "csv")},
        FIGURES_DIR: {path.name for path in figure_paths(corpus).values()},
    }
    with contextlib.suppress(OSError, ValueError):  # else reported with the manifests
        expected[DATA_DIR] = set(corpus.manifest("shards")["shard"])
    for sub, names in expected.items():
        present = {p.name for p in (root / sub).iterdir()} if (root / sub).is_dir() else set()
        for name in sorted(present - names):
            if sub == DATA_DIR and name.endswith(".tar"):  # named like the shards it stands with
                problems.append(Problem(name, "-", "-", "shard is not in the shards manifest"))
            else:
                problems.append(
                    Problem(
                        f"{sub}/{name}",
                        "-",
                        "-",
                        "no part of a corpus: neither the layout nor the manifests name it",
                    )
                )
        if sub != DATA_DIR:  # a missing shard is reported by its own check
            problems += [
                Problem(f"{sub}/{n}", "-", "-", "missing") for n in sorted(names - present)
            ]
    return problems


def manifest_problems(folder: Corpus | Path) -> list[Problem]:
    """Each manifest's csv must hold the same rows as its parquet."""
    corpus = Corpus.of(folder)
    problems = []
    for name in MANIFESTS:
        csv = corpus.manifest_path(name, "csv")
        where = f"{MANIFEST_DIR}/{csv.name}"
        if not csv.is_file():
            continue  # folder_problems names it
        try:
            rows = read_manifest_csv(csv, name, corpus.manifest(name).columns)
        except (OSError, ValueError) as err:  # pyarrow's parse errors are ValueErrors
            problems.append(Problem(where, "-", "-", f"unreadable: {err}"))
            continue
        if not rows.equals(corpus.manifest(name)):
            problems.append(Problem(where, "-", "-", f"rows differ from {name}.parquet"))
    return problems


def card_problems(folder: Corpus | Path, compare_text: bool = True) -> list[Problem]:
    """The card must validate and (with `compare_text`, for an otherwise sound corpus) be exactly
    what the manifests give; the files it vouches for (build.json, manifests, figures) must have
    the sha256 it lists."""
    corpus = Corpus.of(folder)
    path = corpus.card_path
    try:
        problems = [Problem(CARD_FILE, "-", "-", message) for message in card_check(corpus)]
    except (OSError, ValueError) as err:
        problems = [Problem(CARD_FILE, "-", "-", f"cannot be checked: {err}")]
    if not path.is_file():
        return problems
    listed = card_checksums(path.read_text(encoding="utf-8"))
    for name, digest in file_checksums(corpus).items():
        if listed.get(name) != digest:  # one of the two is damaged: name both
            problems.append(Problem(name, "-", "-", "sha256 differs from the card's checksum"))
            message = f"its sha256 of {name} does not match that file"
            problems.append(Problem(CARD_FILE, "-", "-", message))
    if compare_text and not problems and path.read_text(encoding="utf-8") != render_card(corpus):
        message = "differs from the card of the manifests (edited or damaged): `stats --write-card`"
        problems.append(Problem(CARD_FILE, "-", "-", message))
    return problems


class _Inline:
    """`map` in this process: the one-worker stand-in for a process pool."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items):
        return map(fn, items)


def problems_json(problems: list[Problem]) -> list[dict[str, str]]:
    """Problems as JSON-ready dicts (shard, key, member, message)."""
    return [asdict(p) for p in problems]
