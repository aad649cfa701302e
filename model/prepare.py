"""Decode a corpus once for training: `python -m model.prepare --shards ... --out DIR`.

Decoding the sampled frames of the corpus's H.264 clips bounds direct loading by the CPU (see
bench/README.md). This decodes every clip once with the loader's own `model.data.decode_sample`
and writes prepared shards (`model.data.PREPARED_MEMBERS`) that the loader reads without decoding
and turns into the same batches. One output shard per input shard, same name, same samples in the
same order; a clip takes T * R * R * 3 bytes of frames plus its mels (about 2.4 MB at T=10, 256 px
and 128 mels).

    python -m model.prepare --shards 'landscape-av/data/train-*.tar' --out prepared
    python -m model.train --shards 'prepared/train-*.tar' ...

The settings (frames, resolution, mel) must be the training run's: the loader refuses prepared
shards made with others. Resumable: each shard is written to a temporary file and renamed when
complete, and a finished shard with the same settings is kept. Undecodable samples are named and
left out, as the loader would skip them; members with unsafe names (absolute, `..`, not
`<key>.<ext>`) or over `landscape_av.schema.MAX_MEMBER_BYTES` are named and never read. Same
inputs, same bytes.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import webdataset as wds

from landscape_av.files import atomic_path
from landscape_av.progress import print_summary, stage_progress
from model.config import Flag, command, run
from model.data import (
    DataConfig,
    ShardError,
    count_samples,
    expand_shards,
    prepare_sample,
    prepared_settings,
    shard_samples,
    shard_settings,
)


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core


def _prepare(sample: dict, cfg: DataConfig) -> dict | str:
    """A prepared sample, or the reason a sample cannot be decoded."""
    try:
        return prepare_sample(sample, cfg)
    except ValueError as e:
        return str(e)


@dataclass
class PrepareConfig:
    shards: str = ""  # brace pattern / glob of corpus shards
    out: str = "prepared"  # folder of the prepared shards
    frames: int = DataConfig.frames
    resolution: int = DataConfig.resolution
    n_mels: int = DataConfig.n_mels
    workers: int = os.cpu_count() or 1  # decoding processes
    quiet: bool = False


@dataclass
class Report:
    shards: int = 0  # input shards
    kept: int = 0  # finished earlier with the same settings
    written: int = 0  # prepared now
    samples: int = 0  # samples written now
    failed: list[str] = field(default_factory=list)  # why each undecodable sample was left out
    refused: list[str] = field(default_factory=list)  # shard members not read (name or size)


def prepare(
    shards: str | Sequence[str],
    out: Path,
    cfg: DataConfig,
    workers: int = 2,
    quiet: bool = False,
) -> Report:
    """Prepared copies of `shards` (brace patterns, globs) in the folder `out`."""
    urls = expand_shards(shards)
    names = [Path(u).name for u in urls]
    if len(set(names)) < len(names):
        raise ValueError("two input shards share a file name; prepare them into separate folders")
    out.mkdir(parents=True, exist_ok=True)
    want = prepared_settings(cfg)
    todo = [u for u in urls if not _finished(out / Path(u).name, want)]
    report = Report(shards=len(urls), kept=len(urls) - len(todo))
    size = 0
    with (
        ProcessPoolExecutor(max(1, workers), initializer=_init_worker) as pool,
        stage_progress(quiet) as progress,
    ):
        task = progress.add_task("prepare", total=sum(count_samples(u) for u in todo))
        for url in todo:
            dest = out / Path(url).name
            with (
                atomic_path(dest) as tmp,
                wds.TarWriter(str(tmp), user="", group="", mtime=0) as sink,
            ):
                samples = shard_samples(url, refused=report.refused.append)
                for got in _ordered(pool, samples, cfg, window=4 * max(1, workers)):
                    if isinstance(got, str):
                        report.failed.append(got)
                    else:
                        size += sink.write(got)
                        report.samples += 1
                    progress.update(task, advance=1, bytes=size)
            report.written += 1
    return report


def _ordered(
    pool: ProcessPoolExecutor, samples: Iterator[dict], cfg: DataConfig, window: int
) -> Iterator[dict | str]:
    """`_prepare` of each sample in the pool, in input order, at most `window` in flight."""
    pending: deque[Future] = deque()
    for sample in samples:
        pending.append(pool.submit(_prepare, sample, cfg))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _finished(dest: Path, want: dict) -> bool:
    """Whether `dest` is a complete prepared shard made with the settings `want`."""
    try:
        return dest.is_file() and shard_settings(str(dest)) == want
    except (OSError, ValueError, KeyError):
        return False


@command(
    "python -m model.prepare",
    PrepareConfig,
    [
        Flag("shards", "Corpus shards: a brace pattern or glob.", required=True),
        Flag("out", "Folder of the prepared shards."),
        Flag("frames", "Frames T per clip (the training run's)."),
        Flag("resolution", "Frame size in px (the training run's)."),
        Flag("n_mels", "Mel bands (the training run's)."),
        Flag("workers", "Decoding processes."),
        Flag("quiet", "No progress bar or summary."),
    ],
)
def cli(cfg: PrepareConfig) -> None:
    """Decode a corpus once for training (resumable; same inputs, same bytes)."""
    data = DataConfig(frames=cfg.frames, resolution=cfg.resolution, n_mels=cfg.n_mels)
    try:
        report = prepare(cfg.shards, Path(cfg.out), data, cfg.workers, cfg.quiet)
    except (FileNotFoundError, ValueError) as e:
        raise ShardError(f"--shards: {e}") from e
    for reason in report.failed:
        print(f"left out: {reason}", file=sys.stderr)
    for line in report.refused:
        print(f"refused member: {line}", file=sys.stderr)
    summary = {k: v for k, v in asdict(report).items() if k not in ("failed", "refused")}
    counts = {"left out": len(report.failed), "refused members": len(report.refused)}
    print_summary(f"prepared shards in {cfg.out}", summary | counts, cfg.quiet)


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
