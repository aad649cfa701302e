"""Decode a corpus once for training: `python -m model.prepare --shards ... --out DIR`.

Decoding the T sampled frames of a 1280x720 H.264 clip costs tens of ms each on one core, which
holds direct loading to a few samples/s per core. This decodes every clip once with the loader's
own `model.data.decode_sample` and writes prepared shards (`model.data.PREPARED_MEMBERS`) that the
loader reads without decoding and turns into the same batches. One output shard per input shard,
same name, same samples in the same order; about 2.4 MB a clip at T=10, 256 px and 128 mels
(about 22 GB for the full corpus).

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

import argparse
import os
import sys
import tarfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import webdataset as wds

from landscape_av.progress import print_summary, stage_progress
from model.data import (
    DataConfig,
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
            tmp = dest.with_name(dest.name + ".tmp")
            with wds.TarWriter(str(tmp), user="", group="", mtime=0) as sink:
                samples = shard_samples(url, refused=report.refused.append)
                for got in _ordered(pool, samples, cfg, window=4 * max(1, workers)):
                    if isinstance(got, str):
                        report.failed.append(got)
                    else:
                        size += sink.write(got)
                        report.samples += 1
                    progress.update(task, advance=1, bytes=size)
            os.replace(tmp, dest)
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
    except (tarfile.TarError, OSError, ValueError, KeyError):
        return False


def main(argv: list[str] | None = None) -> int:
    defaults = DataConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--shards", nargs="+", required=True, help="corpus shards: globs or brace patterns"
    )
    p.add_argument("--out", type=Path, required=True, help="folder of the prepared shards")
    p.add_argument("--frames", type=int, default=defaults.frames, help="T frames per clip")
    p.add_argument("--resolution", type=int, default=defaults.resolution, help="frame size (px)")
    p.add_argument("--n-mels", type=int, default=defaults.n_mels)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    cfg = DataConfig(frames=args.frames, resolution=args.resolution, n_mels=args.n_mels)
    try:
        report = prepare(args.shards, args.out, cfg, args.workers, args.quiet)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    for reason in report.failed:
        print(f"left out: {reason}", file=sys.stderr)
    for line in report.refused:
        print(f"refused member: {line}", file=sys.stderr)
    summary = {k: v for k, v in asdict(report).items() if k not in ("failed", "refused")}
    counts = {"left out": len(report.failed), "refused members": len(report.refused)}
    print_summary(f"prepared shards in {args.out}", summary | counts, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
