"""`build` to an fsspec URL (`build_remote`): the local build runs unchanged in a local mirror folder
(`--work-dir`, default `storage.mirror_dir`) and keeps the URL in step:

- each source's committed result `.work/samples/<id>/` is uploaded as it is committed, its record
  `source.json` last: a sample folder at the URL without its record is unfinished and never used;
- on start, the committed samples found at the URL are pulled into the mirror (and the mirror's
  that the URL lacks are pushed), so that a rerun from any machine resumes and gives the same bytes;
- the finished corpus is published all or nothing (`storage.publish`), after the build's own rules
  (refusals, exit codes) were applied to the URL's corpus as to a folder's.

`LANDSCAPE_AV_CRASH_AT=publish:<n>` kills the build after the publish journal is written (n=1) or
after its (n-1)-th copy into place, for the resume tests (see `crash.CRASH_ENV`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape_av import storage
from landscape_av.pipeline.build import BuildResult, build
from landscape_av.pipeline.checks import check_target
from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.crash import Crasher
from landscape_av.pipeline.exits import EXIT_OUTPUT, EXIT_REFUSED, BuildStopped
from landscape_av.pipeline.sample_store import CONFIG_RECORD, SAMPLES_DIR, SOURCE_RECORD
from landscape_av.pipeline.swap import recover
from landscape_av.schema import BUILD_FILE, CORPUS_ENTRIES, MANIFEST_DIR, WORK_DIR
from landscape_av.sources.source_list import Source

SAMPLES = f"{WORK_DIR}/{SAMPLES_DIR}"
"""The committed samples at the URL, as in the mirror."""


def _output_error(remote: storage.Remote, error: OSError) -> BuildStopped:
    return BuildStopped(
        EXIT_OUTPUT,
        f"cannot write to {remote.url}: {error}; what reached it is kept: run the same command "
        "again to resume",
    )


def prepare(remote: storage.Remote) -> None:
    """Finish a publish that a kill interrupted, then refuse (BuildStopped) a URL that holds
    something other than a corpus, as `checks.check_folder` does for a folder."""
    try:
        storage.roll_forward(remote)
        why = storage.check_location(remote)
    except storage.StorageError as e:
        raise _output_error(remote, e) from None
    if why:
        raise BuildStopped(EXIT_REFUSED, why)


def build_remote(
    sources: Sequence[Source],
    config: BuildConfig,
    source_list: str,
    remote: storage.Remote,
    classes: Sequence[str] | None = None,
) -> BuildResult:
    """Build the corpus of `sources` (labels indexing `classes`, as in `build`) to `remote`
    through the local mirror folder `config.out`: `build` itself with the same rules and exit
    codes (the corpus at the URL stands for the one in OUT), each committed source uploaded, and
    the corpus published once finished."""
    mirror = Path(config.out)
    prepare(remote)
    try:
        recover(mirror)
        pull_corpus_state(remote, mirror)
        if remote.files(SAMPLES):  # an earlier run reached the URL: --resume goes on from there
            (mirror / SAMPLES).mkdir(parents=True, exist_ok=True)
        check_target(mirror, sources, config, source_list)  # before samples are touched
        sync_samples(remote, mirror / SAMPLES, config.output_fingerprint())
    except storage.StorageError as e:
        raise _output_error(remote, e) from None

    def upload(committed: Path) -> None:
        try:
            push_sample(committed, remote)
        except storage.StorageError as e:
            raise _output_error(remote, e) from None

    result = build(sources, config, source_list, classes=classes, on_commit=upload)
    crasher = Crasher()
    try:
        storage.publish(mirror, remote, lambda: crasher.done("publish"))
    except storage.StorageError as e:
        raise _output_error(remote, e) from None
    return result


def pull_corpus_state(remote: storage.Remote, mirror: Path) -> None:
    """Make the mirror's corpus files those of the URL's corpus that the build compares with:
    build.json and the manifests (its shards are not needed: the build writes its own)."""
    for entry in CORPUS_ENTRIES - {WORK_DIR}:
        path = mirror / entry
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for rel in remote.files():
        if rel.split("/", 1)[0] in (BUILD_FILE, MANIFEST_DIR):
            remote.get(rel, mirror / rel)


def push_sample(committed: Path, remote: storage.Remote) -> None:
    """Upload a committed sample folder: its old objects go first, its record comes last."""
    base = f"{SAMPLES}/{committed.name}"
    remote.remove_tree(base)
    for path in sorted(committed.iterdir()):
        if path.name != SOURCE_RECORD:
            remote.put(path, f"{base}/{path.name}")
    remote.put(committed / SOURCE_RECORD, f"{base}/{SOURCE_RECORD}")


def _pull_sample(remote: storage.Remote, source_id: str, samples: Path) -> None:
    """Download the committed sample `source_id` into `samples/`, renamed into place whole."""
    base = f"{SAMPLES}/{source_id}"
    tmp = samples / f".pull-{source_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in remote.files(base):
        remote.get(rel, tmp / rel[len(base) + 1 :])
    shutil.rmtree(samples / source_id, ignore_errors=True)
    os.replace(tmp, samples / source_id)


def sync_samples(remote: storage.Remote, samples: Path, fingerprint: dict[str, Any]) -> None:
    """Bring the committed samples of the mirror's `samples` folder and of the URL together, when
    both were made with the settings `fingerprint` (samples made with others are dropped at the
    URL, as the build drops them locally)."""
    record = (json.dumps(fingerprint, indent=1, sort_keys=True) + "\n").encode()
    there = remote.read(f"{SAMPLES}/{CONFIG_RECORD}")
    if there is not None and json.loads(there) != fingerprint:
        remote.remove_tree(SAMPLES)
    remote.write(f"{SAMPLES}/{CONFIG_RECORD}", record)
    names = (rel[len(SAMPLES) + 1 :] for rel in remote.files(SAMPLES))
    remote_ids = {
        n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith(f"/{SOURCE_RECORD}")
    }
    local_config = samples / CONFIG_RECORD
    if local_config.is_file() and json.loads(local_config.read_text()) != fingerprint:
        shutil.rmtree(samples)  # as the build would
    samples.mkdir(parents=True, exist_ok=True)
    local_config.write_bytes(record)
    local_ids = {  # not a hidden folder: one the build was writing, or a pull
        p.parent.name for p in samples.glob(f"*/{SOURCE_RECORD}") if p.parent.name[0] != "."
    }
    for source_id in sorted(remote_ids - local_ids):
        _pull_sample(remote, source_id, samples)
    for source_id in sorted(local_ids - remote_ids):
        push_sample(samples / source_id, remote)
