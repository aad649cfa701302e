"""`push`: publish a built corpus folder as a Hugging Face Hub dataset repository.

Needs a Hub token (`hf auth login`, or `HF_TOKEN`) and the network. Before anything is sent the
folder is checked (every shard's and member's hash and the card, see `verify`), so a damaged
corpus never reaches the Hub. The resumable build state `.work/` and hidden temporary files stay
local. After the push, `load_dataset("<repo id>")` loads the corpus as it loads the folder.

`cache_warning(folder)`: `datasets` caches a prepared dataset under `HF_DATASETS_CACHE/<name>/`
(the folder's name, or the repo's), keyed by the card's settings, not by the path, and
`load_dataset("<name>")` falls back to any cached dataset of that name when no such folder or Hub
repo answers: the warning names the other folders whose datasets are cached under this name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

from landscape_av.corpus.corpus import Corpus
from landscape_av.corpus.verify import verify_corpus
from landscape_av.schema import SPLITS, WORK_DIR, shard_glob

IGNORE_PATTERNS: tuple[str, ...] = (f"{WORK_DIR}/*", "*.tmp", ".*")
"""Files of a corpus folder that are never uploaded."""


def upload_files(folder: Corpus | Path) -> list[str]:
    """The files `push` uploads: paths relative to `folder`, sorted."""
    folder = Corpus.of(folder).folder
    every = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(every, ignore_patterns=list(IGNORE_PATTERNS)))


def cached_from(folder_name: str) -> set[Path]:
    """The corpus folders that the datasets named `folder_name` in the `datasets` cache were
    prepared from, read from the `__url__` (a shard's path) of each cached split's first row."""
    import pyarrow as pa
    from datasets import config

    found: set[Path] = set()
    for arrow in sorted((Path(config.HF_DATASETS_CACHE) / folder_name).glob("*/*/*/*.arrow")):
        try:
            with pa.memory_map(str(arrow)) as source:
                batch = next(iter(pa.ipc.open_stream(source)), None)
        except (OSError, ValueError):  # a file `datasets` is writing, or not one of its own
            continue
        if batch is not None and "__url__" in batch.schema.names and batch.num_rows:
            found.add(Path(batch.column("__url__")[0].as_py()).parent.parent)
    return found


def cache_warning(folder: Corpus | Path) -> str | None:
    """A line naming the other folders whose dataset is in the `datasets` cache under the name of
    `folder` (which `load_dataset("<name>")` may return); None when there are none."""
    path = Corpus.of(folder).folder.resolve()
    others = sorted(str(p) for p in cached_from(path.name) if p.resolve() != path)
    if not others:
        return None
    return (
        f"the datasets cache holds a dataset named {path.name!r} from {', '.join(others)}: "
        f"load_dataset({path.name!r}) may return that one; load this corpus by its path, "
        f'load_dataset("{path}")'
    )


def load_corpus(
    location: Corpus | str | Path, storage_options: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """`datasets.load_dataset` of the corpus in a folder or at an fsspec URL, with `kwargs`
    (`split`, `cache_dir`...). A folder loads as `load_dataset(folder)` does; `datasets` cannot
    open a URL as a dataset folder, so a URL's shards load by their globs (`data_files`, as the
    card lists them) with the card's features and `storage_options` (default: the environment's
    credentials). `streaming=True` on S3 fails inside `datasets` 5.2 (it hands s3fs a
    `block_size` its session refuses): load it whole, or copy the corpus to a folder."""
    import datasets

    from landscape_av.corpus.card import card_features, optional_fields

    corpus = location if isinstance(location, Corpus) else Corpus(location, storage_options)
    if not corpus.is_remote:
        return datasets.load_dataset(str(corpus.folder), **kwargs)
    shards = corpus.manifest("shards")
    files = {
        s: f"{corpus.location}/{shard_glob(s)}" for s in SPLITS if (shards["split"] == s).any()
    }
    return datasets.load_dataset(
        "webdataset",
        data_files=files,
        features=card_features(corpus.classes, optional_fields(corpus)),
        storage_options=storage_options or {},
        **kwargs,
    )


def check_before_push(folder: Corpus | Path) -> None:
    """Raise ValueError naming every problem of the shards' bytes or of the card."""
    corpus = Corpus.of(folder)
    problems = [str(p) for p in verify_corpus(corpus, decode=False)]
    if problems:
        raise ValueError(f"{corpus.folder} is not ready to publish:\n  " + "\n  ".join(problems))


def push(
    folder: Corpus | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    message: str = "Upload the Landscape-AV corpus",
) -> str:
    """Check `folder`, create the dataset repo `repo_id` if needed and upload; return the commit URL."""
    corpus = Corpus.of(folder)
    check_before_push(corpus)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=corpus.folder,
        revision=revision,
        commit_message=message,
        ignore_patterns=list(IGNORE_PATTERNS),
    )
    return info.commit_url
