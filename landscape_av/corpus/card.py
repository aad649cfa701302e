"""The dataset card `OUT/README.md`: Hugging Face front matter + the standard sections, from manifests.

`write_card(folder)` renders `cards/landscape-av.md` with numbers computed by `stats` from the
build's manifests (never typed in) and writes the figures it references. What a corpus is (its
title, summary, licenses, limitations and citation) comes from `cards/kind-<kind>.md`: the demo's
synthetic media get their own (`card_kind`). `feature_yaml(classes)` is what the card declares of a
sample, every field explicit, `mp4`/`flac` as bytes, so that `load_dataset` needs no torchcodec;
`card_features(classes)` is the same as `datasets.Features` (for `card_check` and `hub`). Writing
a card needs neither `datasets` nor pyplot, whose imports cost a build about half a CPU-second.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from landscape_av.classes import CLASSES
from landscape_av.corpus.corpus import Corpus, read_shard
from landscape_av.corpus.stats import (
    COUNTS,
    FIGURES,
    OPTIONAL_FIGURES,
    SUMMARIES,
    attrition_line,
    corpus_stats,
    figure_captions,
    write_figures,
)
from landscape_av.files import atomic_write, file_sha256
from landscape_av.pipeline.filters import THRESHOLDS
from landscape_av.resources import card_template
from landscape_av.schema import (
    BUILD_FILE,
    CLIP_REJECT_REASONS,
    FIGURES_DIR,
    HASHED_MEMBERS,
    MANIFEST_DIR,
    MANIFESTS,
    MEMBER_DOCS,
    OPTIONAL_SAMPLE_FIELDS,
    REJECT_REASONS,
    SAMPLE_DOCS,
    SPLITS,
    SampleMeta,
    shard_glob,
)
from landscape_av.sources.demo import DEMO_SOURCE_LIST

PRETTY_NAME = "Landscape-AV"

FIELD_DOCS: dict[str, str] = (
    {ext: doc for ext, doc in MEMBER_DOCS.items() if ext != "json"}
    | {f"json.{name}": doc for name, doc in SAMPLE_DOCS.items()}
    | {f"json.{name}": doc for name, (_, doc) in OPTIONAL_SAMPLE_FIELDS.items()}
)
"""The card's field table: each member, and each field of the json member (from `schema`)."""

KINDS: dict[str, dict[str, Any]] = {
    "landscape": {
        "pretty_name": PRETTY_NAME,
        "tags": ["audio-to-video", "audio-visual", "nature-sounds", "webdataset", "landscape"],
    },
    "demo": {
        "pretty_name": f"{PRETTY_NAME} demo",
        "tags": ["audio-to-video", "audio-visual", "webdataset", "synthetic"],
    },
    "classes": {
        "pretty_name": "Audio-visual clips (landscape-av)",
        "tags": ["audio-to-video", "audio-visual", "webdataset"],
    },
}
"""Per kind of corpus (`card_kind`): the Hub's name and tags; its prose is `cards/kind-<kind>.md`."""

HUB_LICENSES = {"cc0-1.0", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "mit"}
"""Hub license ids that a build whose sources all share one license can declare as is."""


def optional_fields(folder: Corpus | Path) -> tuple[str, ...]:
    """The `schema.OPTIONAL_SAMPLE_FIELDS` that the corpus's samples have (its clips manifest has
    them as columns: the build measured them)."""
    columns = Corpus.of(folder).manifest("clips").columns
    return tuple(name for name in OPTIONAL_SAMPLE_FIELDS if name in columns)


def feature_yaml(classes: Sequence[str], optional: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The features of a sample in the form the card's `dataset_info.features` holds them (the
    Hub's YAML, as `datasets.Features._to_yaml_list` writes it): SampleMeta order, then the
    `optional` fields it has (`optional_fields`); the label a class label of the corpus's `classes`
    (`Corpus.classes`); `mp4`/`flac` as bytes, so that `load_dataset` needs no torchcodec. Written
    here rather than by `datasets`, whose import costs a build half a CPU-second
    (tests/corpus/test_card.py holds it to `datasets`' own output)."""
    kinds = {str: "string", int: "int64", float: "float64"}
    meta: list[dict[str, Any]] = []
    for name, kind in SampleMeta.__annotations__.items():
        if name == "label":
            names = {str(i): c for i, c in enumerate(classes)}
            meta.append({"name": name, "dtype": {"class_label": {"names": names}}})
        elif name == "sha256":
            hashes = [{"name": ext, "dtype": "string"} for ext in HASHED_MEMBERS]
            meta.append({"name": name, "struct": hashes})
        else:
            meta.append({"name": name, "dtype": kinds[kind]})
    meta += [{"name": name, "dtype": kinds[OPTIONAL_SAMPLE_FIELDS[name][0]]} for name in optional]
    return [
        {"name": "mp4", "dtype": "binary"},
        {"name": "flac", "dtype": "binary"},
        {"name": "json", "struct": meta},
        {"name": "jpg", "dtype": "image"},
        {"name": "__key__", "dtype": "string"},
        {"name": "__url__", "dtype": "string"},
    ]


def card_features(classes: Sequence[str], optional: Sequence[str] = ()):
    """The `datasets.Features` of a sample, as the card declares them (`feature_yaml`)."""
    from datasets import Features

    return Features._from_yaml_list(feature_yaml(classes, optional))


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M"


def published_splits(stats: dict[str, Any]) -> list[str]:
    """The splits that have shards (a small build can leave one empty; `datasets` must not look
    for files of a split that has none)."""
    return [s for s in SPLITS if stats["per_split"][s]["shards"]]


def card_kind(folder: Corpus | Path) -> str:
    """ "demo" for a corpus that build.json records as built from the demo's source list,
    "classes" for one whose classes are not the nine (a VGGSound list's), else "landscape" (a key
    of `KINDS`)."""
    corpus = Corpus.of(folder)
    if corpus.build_settings().get("manifest") == DEMO_SOURCE_LIST:
        return "demo"
    return "landscape" if corpus.classes == CLASSES else "classes"


def _kind_parts(kind: str) -> dict[str, str]:
    """The parts of `cards/kind-<kind>.md` (`about`, `licenses`, `closing`), each headed by a line
    `<!-- name -->`."""
    text = card_template(f"kind-{kind}.md").read_text()
    pieces = re.split(r"^<!-- (\w+) -->\n", text, flags=re.M)[1:]
    return {name: body.strip() for name, body in zip(pieces[::2], pieces[1::2], strict=True)}


def front_matter(
    stats: dict[str, Any],
    licenses: list[str],
    classes: Sequence[str],
    kind: str = "landscape",
    optional: Sequence[str] = (),
) -> dict[str, Any]:
    """The card's YAML metadata: what the Hub reads to list, preview and load the dataset (the
    samples' `optional` fields among the features). The byte counts are the shards' (the bytes
    `load_dataset` reads)."""
    present = published_splits(stats)
    total = stats["totals"]["bytes"]
    info = {  # as `datasets.DatasetInfo._to_yaml_dict` writes it
        "features": feature_yaml(classes, optional),
        "splits": [
            {
                "name": split,
                "num_bytes": stats["per_split"][split]["bytes"],
                "num_examples": stats["per_split"][split]["clips"],
            }
            for split in present
        ],
        "download_size": total,
        "dataset_size": total,
    }
    one = {lic.strip().lower() for lic in licenses}
    license_id = one.pop() if len(one) == 1 and one <= HUB_LICENSES else "other"
    meta: dict[str, Any] = {
        "pretty_name": KINDS[kind]["pretty_name"],
        "license": license_id,
    }
    if license_id == "other":
        meta["license_name"] = "source-video-licenses"
        meta["license_details"] = "Each clip keeps the license of its source video (json.license)."
    meta |= {
        "task_categories": ["video-classification", "audio-classification"],
        "tags": KINDS[kind]["tags"],
        "size_categories": [_size_category(stats["totals"]["clips"])],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": shard_glob(s)} for s in present],
            }
        ],
        "dataset_info": info,
    }
    return meta


def file_checksums(folder: Corpus | Path) -> dict[str, str]:
    """sha256 of the files the card vouches for (path relative to `folder` -> hex): build.json,
    every manifest (parquet and csv) and figure. The shards' are in the shards manifest, the
    members' in the clips manifest: the card heads a chain of hashes down to every byte."""
    folder = Corpus.of(folder).folder
    names = [BUILD_FILE]
    names += [f"{MANIFEST_DIR}/{m}.{fmt}" for m in MANIFESTS for fmt in ("parquet", "csv")]
    names += [f"{FIGURES_DIR}/{name}.png" for name in figure_captions(folder)]
    return {name: file_sha256(folder / name) for name in names if (folder / name).is_file()}


CHECKSUM_ROW = re.compile(r"^\| `([^`]+)` \| ([0-9a-f]{64}) \|$", re.M)
"""A row of the card's checksum table."""


def card_checksums(text: str) -> dict[str, str]:
    """The checksum table of a card's text (path -> sha256 hex)."""
    return dict(CHECKSUM_ROW.findall(text))


def _table(rows: list[list[Any]]) -> str:
    return "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in rows)


_MD_PUNCTUATION = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
"""What markdown reads as syntax inside a table cell: escapes, code, emphasis (an `_` inside a
word, as in a source id, is none), links, cell borders."""


def _md(text: Any) -> str:
    """Text from a source list (a licence, an attribution, a class name) as literal text in one
    markdown table cell: HTML's `& < >` as entities (no tag, such as `</details><script>`, gets
    through), markdown's punctuation backslash-escaped, line breaks as spaces; "-" for none."""
    text = " ".join(str(text).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCTUATION.sub(r"\\\1", text) or "-"


def _md_link(label: str, url: str) -> str:
    """A markdown link to `url` whose destination cannot end early or carry markup: every
    character outside a URL's plain ones percent-encoded."""
    return f"[{_md(label)}]({quote(url, safe=_URL_SAFE)})"


_URL_SAFE = ":/?#@$&*+,;=%._~"


def first_sample_meta(folder: Corpus | Path) -> dict[str, Any] | None:
    """The json member of the first sample of the first train shard (None for an empty corpus)."""
    for shard in Corpus.of(folder).shards(SPLITS[0]):
        try:
            for sample in read_shard(shard, members=("json",)):
                if "json" in sample.members:
                    return sample.meta()
        except ValueError as err:
            message = f"{shard}: unreadable ({err}); `landscape-av verify` says more"
            raise ValueError(message) from None
    return None


def _flat(settings: dict[str, Any]) -> dict[str, Any]:
    """Leaf settings of build.json by their own name (`{"filters": {"silence_db": -60}}` ->
    `{"silence_db": -60}`), so that the card finds a threshold wherever the build nests it."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        flat |= _flat(value) if isinstance(value, dict) else {key: value}
    return flat


def render_card(folder: Corpus | Path, stats: dict[str, Any] | None = None) -> str:
    """The card's text for the corpus in `folder`."""
    corpus = Corpus.of(folder)
    stats = stats or corpus_stats(corpus)
    m = corpus.manifests()
    sources, clips, failures = m["sources"], m["clips"], m["failures"]
    config = _flat(corpus.build_settings())
    used = sources[sources["source_id"].isin(set(clips["source_id"]))]
    example = first_sample_meta(corpus)
    first = clips.iloc[0] if len(clips) else None
    kind = card_kind(corpus)

    licenses = sorted(used["license"].fillna("").astype(str))
    license_counts: dict[str, int] = {}
    for lic in licenses:
        license_counts[lic or "unknown"] = license_counts.get(lic or "unknown", 0) + 1

    totals = stats["totals"]
    per_split = stats["per_split"]
    filter_counts = failures.loc[failures["stage"] == "filter", "reason"].value_counts().to_dict()
    optional = optional_fields(corpus)
    fields = ["mp4", "flac", "jpg"] + [
        f"json.{k}" for k in (*SampleMeta.__annotations__, *optional)
    ]
    types = {"mp4": "binary", "flac": "binary", "jpg": "Image"}
    json_fields = next(
        f["struct"] for f in feature_yaml(corpus.classes, optional) if f["name"] == "json"
    )
    for feature in json_fields:
        dtype = "struct" if "struct" in feature else feature["dtype"]
        types[f"json.{feature['name']}"] = dtype if isinstance(dtype, str) else "ClassLabel"
    n_train_shards = per_split[SPLITS[0]]["shards"]
    values = {
        "front_matter": yaml.safe_dump(
            front_matter(stats, licenses, corpus.classes, kind, optional),
            sort_keys=False,
            allow_unicode=True,
        ),
        "clips": f"{totals['clips']:,}",
        "hours": f"{totals['hours']:.2f}",
        "sources_used": f"{totals['sources_used']:,}",
        "num_classes": len(corpus.classes),
        "clip_seconds": f"{config.get('clip_seconds', first['duration'] if first is not None else 10.0):g}",
        "max_clips": config.get("max_clips", "N"),
        "resolution": f"{int(first['width'])}x{int(first['height'])}" if first is not None else "-",
        "fps": f"{float(first['fps']):g}" if first is not None else "-",
        "sample_rate": int(first["sample_rate"]) if first is not None else "-",
        "channels": int(first["channels"]) if first is not None else "-",
        "last_train_shard": f"{max(n_train_shards - 1, 0):06d}",
        "example": json.dumps(example, indent=2) if example else "{}",
        "example_row": (
            f"{example['class']!r}, {example['label']} (a ClassLabel)"
            if example
            else "(no train clip in this corpus)"
        ),
        "fields_table": _table([[f"`{f}`", types[f], FIELD_DOCS[f]] for f in fields]),
        "splits_table": _table(
            [
                [
                    s,
                    f"{v['sources_used']} / {v['sources']}",
                    f"{v['clips']:,}",
                    f"{v['hours']:.3f}",
                    v["shards"],
                ]
                for s, v in per_split.items()
            ]
        ),
        "classes_table": _table(
            [
                [
                    r["label"],
                    _md(r["class"]),
                    r["train"]["clips"],
                    r["test"]["clips"],
                    r["train"]["sources_used"] + r["test"]["sources_used"],
                    f"{r['train']['hours'] + r['test']['hours']:.3f}",
                    sum(r["rejected"].values()),
                ]
                for r in stats["per_class"]
            ]
        ),
        "distributions": _distributions(stats, figure_captions(corpus)),
        "source_data": _source_data(config, totals),
        "filters_table": _table(
            [
                [f"`{reason}`", rule, _threshold(config, reason), filter_counts.get(reason, 0)]
                for reason, rule in REJECT_REASONS.items()
            ]
            + _curation_rows(corpus.build_settings(), filter_counts)
        ),
        "failures_table": _table([[k, v] for k, v in stats["rejections"].items()])
        or "| none | 0 |",
        "licenses_table": _table([[_md(k), v] for k, v in sorted(license_counts.items())]),
        "checksums_table": _table([[f"`{k}`", v] for k, v in file_checksums(corpus).items()]),
        "attribution_table": _table(
            [
                [_md_link(r.source_id, r.url), _md(r["class"]), _md(r.license), _md(r.attribution)]
                for _, r in used.sort_values("source_id").iterrows()
            ]
        ),
    } | {f"{name}_caption": caption for name, caption in FIGURES.items()}
    values |= {
        name: string.Template(text).substitute(values) for name, text in _kind_parts(kind).items()
    }
    return string.Template(card_template().read_text()).substitute(values)


def card_summary(text: str) -> tuple[str, str]:
    """(title, summary) of a card's text: its first `# ` heading and its `## Dataset summary`
    section, as markdown ("" for what it lacks)."""
    body = text.split("\n---\n", 1)[1] if text.startswith("---\n") and "\n---\n" in text else text
    title, summary, inside = "", [], False
    for line in body.splitlines():
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("#"):
            inside = line.strip().lower() == "## dataset summary"
        elif inside:
            summary.append(line)
    return title, "\n".join(summary).strip()


def _threshold(config: dict[str, Any], reason: str) -> str:
    keys = THRESHOLDS.get(reason, ())
    shown = [f"`{k}` = {config[k]}" for k in keys if k in config]
    return ", ".join(shown) or "-"


SOURCE_LISTS: dict[str, str] = {
    "demo": "the offline demo of landscape-av (`landscape-av build --demo`): generated test media "
    "served on 127.0.0.1, a stand-in for real sources, not the Landscape corpus",
    "vggsounder": "a pool of VGGSound videos (VGGSound: CC BY 4.0) kept by the labels of the "
    "`vggsounder` package (MIT) as audible and visible, without music, still image or voice-over",
    "landscape": "the Landscape source list published by the authors of TempoTokens "
    "(github.com/guyyariv/TempoTokens, MIT); its ids and classes come from VGGSound (CC BY 4.0)",
    "vggsound": "a VGGSound list (VGGSound: CC BY 4.0) converted by `landscape-av sources "
    "vggsound`, which keeps VGGSound's class names",
    "": "a source list given to the build (each source's url, license and attribution below)",
}
"""Credit of a source list, by a word in its file name ("" for any other list)."""


def _source_data(config: dict[str, Any], totals: dict[str, Any]) -> str:
    manifest = Path(str(config.get("manifest") or "unrecorded")).name
    credit = next(text for word, text in SOURCE_LISTS.items() if word in manifest)
    return (
        f"Source list {_md(manifest)}: {credit}. Sources listed: {totals['sources']:,}; gave clips: "
        f"{totals['sources_used']:,}; lost: {attrition_line(totals)}; rejected, lost or failed: "
        f"{totals['failures']:,} (see below)."
    )


def _curation_rows(build: dict[str, Any], counts: dict[str, int]) -> list[list[Any]]:
    """Rows of the filters table for the curation stages the build ran (build.json's `models`):
    the rule names the model, its package and the start of its sha256."""
    rows = []
    config = build.get("config", {})
    for reason, rule in CLIP_REJECT_REASONS.items():
        stage = {"shot_cut": "shots", "speech": "speech"}[reason]
        model = build.get("models", {}).get(stage)
        if model:
            rule = f"{rule}; {model['package']}, `{model['file']}` (sha256 {model['sha256'][:12]})"
            rows.append(
                [f"`{reason}` (clips)", rule, _threshold(config, reason), counts.get(reason, 0)]
            )
    return rows


def _distributions(stats: dict[str, Any], captions: dict[str, str]) -> str:
    """The distributions table and counts, then the figures of the optional measures."""
    dist = stats["distributions"]
    lines = ["| Quantity | min | 5% | median | 95% | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, label, scale in SUMMARIES:
        if dist[name]:
            cells = (f"{dist[name][k] * scale:.4g}" for k in ("min", "p05", "median", "p95", "max"))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, label in COUNTS:
        counts = ", ".join(f"{k}: {v}" for k, v in dist[name].items()) or "-"
        lines.append(f"\n{label.capitalize()} (count): {counts}.")
    lines += [
        f"\n![{captions[name]}](figures/{name}.png)"
        for name in OPTIONAL_FIGURES
        if name in captions
    ]
    return "\n".join(lines)


def write_card(corpus_dir: Corpus | Path) -> Path:
    """Write `corpus_dir/README.md` (and the figures it shows) from the manifests; return its path."""
    corpus = Corpus.of(corpus_dir)
    stats = corpus_stats(corpus)
    write_figures(corpus, stats)
    atomic_write(corpus.card_path, render_card(corpus, stats))
    return corpus.card_path


SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M")
REQUIRED_KEYS = (
    "pretty_name",
    "license",
    "task_categories",
    "tags",
    "size_categories",
    "configs",
    "dataset_info",
)


def card_check(folder: Corpus | Path) -> list[str]:
    """Offline validation of `folder/README.md`: every problem as a line (none: valid).

    Parses the card as the Hub and `datasets` do (`DatasetCard`, `MetadataConfigs`,
    `DatasetInfosDict`) and checks the required metadata, the split globs against the shards, the
    declared features against `card_features(classes)`, the split sizes against the clips manifest, the
    figures it shows, and that the folder holds no loading script."""
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    corpus = Corpus.of(folder)
    folder, path = corpus.folder, corpus.card_path
    if not path.is_file():
        return [f"{path} is missing"]
    try:
        card = DatasetCard.load(path)
        configs = MetadataConfigs.from_dataset_card_data(card.data)
        infos = DatasetInfosDict.from_dataset_card_data(card.data)
    except Exception as err:  # noqa: BLE001 - any parse failure is the finding
        return [f"front matter does not parse: {err}"]
    data = card.data.to_dict()
    problems = [f"metadata lacks `{key}`" for key in REQUIRED_KEYS if not data.get(key)]
    if data.get("license") == "other" and not data.get("license_name"):
        problems.append("license `other` needs a `license_name`")
    problems += [
        f"size category {c!r} is not one of {SIZE_CATEGORIES}"
        for c in data.get("size_categories") or []
        if c not in SIZE_CATEGORIES
    ]
    files = (configs.get("default") or {}).get("data_files") or []
    globs = {f.get("split"): f.get("path") for f in files if isinstance(f, dict)}
    m = corpus.manifests()
    present = [s for s in SPLITS if (m["shards"]["split"] == s).any()]
    if list(globs) != present:
        problems.append(f"configs data_files splits {list(globs)} != splits with shards {present}")
    for split, pattern in globs.items():
        if not list(folder.glob(str(pattern))):
            problems.append(f"data_files {split}: {pattern!r} matches no file")
    info = infos.get("default")
    if info is None or info.features != card_features(corpus.classes, optional_fields(corpus)):
        problems.append("dataset_info features differ from the features of a sample")
    clips = m["clips"]
    for split in present:
        declared = (
            info.splits[split].num_examples if info and split in (info.splits or {}) else None
        )
        actual = int((clips["split"] == split).sum())
        if declared != actual:
            problems.append(f"declares {declared} {split} rows; the clips manifest has {actual}")
        shards = m["shards"]
        size = int(shards.loc[shards["split"] == split, "bytes"].sum())
        declared = info.splits[split].num_bytes if info and split in (info.splits or {}) else None
        if declared != size:
            problems.append(f"declares {declared} {split} bytes; its shards hold {size}")
    text = path.read_text(encoding="utf-8")
    for name in figure_captions(corpus):
        ref = f"figures/{name}.png"
        if ref not in text or not (folder / ref).is_file():
            problems.append(f"figure {ref} is not shown or not present")
    problems += [f"{p.name}: no loading scripts (datasets 4+)" for p in folder.glob("*.py")]
    return problems
