"""What a peer model generates from: `python -m model.export_sounds --shards 'CORPUS/data/test-*.tar'
--out sounds/`.

Writes each test clip's sound as `KEY.wav` (16-bit PCM at the clip's own rate and channels) and
`prompts.csv` (key, class, prompt), keyed by the corpus key, the names `python -m model.evaluate
--videos` expects of the videos made from them (`KEY.mp4`, the sound muxed in or `KEY.wav` beside).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from model.config import Flag, UsageError, command, run
from model.data import expand_shards
from model.eval_media import export_sounds


@dataclass
class ExportConfig:
    shards: str = ""  # test shards: brace pattern or glob
    out: str = "sounds"
    num_videos: int = 2048  # the first N test clips, in shard order, as model.evaluate takes them


@command(
    "python -m model.export_sounds",
    ExportConfig,
    [
        Flag("shards", "Test shards: brace pattern or glob.", required=True),
        Flag("out", "Folder to write KEY.wav and prompts.csv into."),
        Flag("num_videos", "Test clips exported (the first, as model.evaluate takes them)."),
    ],
)
def cli(cfg: ExportConfig) -> None:
    """Each test clip's sound as KEY.wav and its class prompt in prompts.csv."""
    try:
        expand_shards(cfg.shards)
    except FileNotFoundError as e:
        raise UsageError(f"--shards: {e}") from None
    n = export_sounds(cfg.shards, cfg.out, cfg.num_videos)
    print(f"{cfg.out}: {n} sounds (KEY.wav) and prompts.csv written")


def main(argv: list[str] | None = None) -> int:
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
