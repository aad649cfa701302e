"""`build` to an fsspec URL: the local build runs in a mirror folder and keeps the URL in step (each
committed source uploaded as it is committed, the finished corpus published all or nothing); the
transfers and their rules are `landscape_av.storage`'s.

`LANDSCAPE_AV_CRASH_AT=publish:<n>` kills the build after the publish journal is written (n=1) or
after its (n-1)-th copy into place, for the resume tests (see `build.CRASH_ENV`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from landscape_av import storage
from landscape_av.pipeline.build import (
    EXIT_OUTPUT,
    EXIT_REFUSED,
    SAMPLES_DIR,
    BuildConfig,
    BuildResult,
    BuildStopped,
    _check_target,
    _Crasher,
    build,
    recover,
)
from landscape_av.schema import WORK_DIR
from landscape_av.sources.source_list import Source


def _output_error(remote: storage.Remote, error: OSError) -> BuildStopped:
    return BuildStopped(
        EXIT_OUTPUT,
        f"cannot write to {remote.url}: {error}; what reached it is kept: run the same command "
        "again to resume",
    )


def prepare(remote: storage.Remote) -> None:
    """Finish a publish that a kill interrupted, then refuse (BuildStopped) a URL that holds
    something other than a corpus, as `build.check_folder` does for a folder."""
    try:
        storage.roll_forward(remote)
        why = storage.check_location(remote)
    except storage.StorageError as e:
        raise _output_error(remote, e) from None
    if why:
        raise BuildStopped(EXIT_REFUSED, why)


def build_remote(
    sources: Sequence[Source], config: BuildConfig, source_list: str, remote: storage.Remote
) -> BuildResult:
    """Build the corpus of `sources` to `remote` through the local mirror folder `config.out`:
    `build` itself with the same rules and exit codes (the corpus at the URL stands for the one
    in OUT), each committed source uploaded, and the corpus published once finished."""
    mirror = Path(config.out)
    prepare(remote)
    try:
        recover(mirror)
        storage.pull_corpus_state(remote, mirror)
        _check_target(mirror, sources, config, source_list)  # before samples are touched
        storage.sync_samples(remote, mirror / WORK_DIR / SAMPLES_DIR, config.output_fingerprint())
    except storage.StorageError as e:
        raise _output_error(remote, e) from None

    def upload(committed: Path) -> None:
        try:
            storage.push_sample(committed, remote)
        except storage.StorageError as e:
            raise _output_error(remote, e) from None

    result = build(sources, config, source_list, on_commit=upload)
    crasher = _Crasher()
    try:
        storage.publish(mirror, remote, lambda: crasher.done("publish"))
    except storage.StorageError as e:
        raise _output_error(remote, e) from None
    return result
