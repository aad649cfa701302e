"""When the output cannot be written: which errors are the output's rather than one source's
(`OUTPUT_ERRNOS`, a child's "No space left on device"), and the one line that stops the build,
with about how much space the rest of it needs (`space_needed`) and how much is free."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from landscape_av.pipeline.clip import ClipOptions

OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES})
"""errno values of an OSError that are the output's, not one source's."""
_FULL_RE = re.compile(r"No space left on device|Disk quota exceeded")
BITS_PER_PIXEL = 0.1
"""Size of an H.264 clip at the default quality, before any clip of the build gives a measure
(its FLAC is counted as 16-bit stereo at 60%)."""


def raise_if_output_full(message: str) -> None:
    """Raise ENOSPC when a child's error `message` says that the disk is full."""
    if _FULL_RE.search(message):
        raise OSError(errno.ENOSPC, "No space left on device (reported by a child process)")


def output_message(error: OSError, out: Path, needed: int) -> str:
    """The line that stops a build which cannot write `error`'s file (in `out`). The free space
    is measured now, once the partial files of the stopped work are gone, so it is more than there
    was when the write failed; `needed` counts that work too (`space_needed`)."""
    where = Path(error.filename) if error.filename else out
    existing = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    return (
        f"cannot write {where}: {error.strerror or error} (the rest of the build needs about "
        f"{needed / 1e6:,.0f} MB: clips, shards and the downloads in progress; "
        f"{free / 1e6:,.0f} MB are free there now); free some space (or use --out elsewhere) and "
        "run the same command again: it resumes"
    )


def space_needed(
    committed: int, made: int, left: int, clip: ClipOptions, in_flight: int = 0
) -> int:
    """Rough bytes that the rest of the build needs: the clips of the `left` sources not finished
    yet (`clip.max_clips` each, at the mean size of the `made` clips whose store takes
    `committed` bytes, or `BITS_PER_PIXEL` before any), the shards, which hold a copy of every
    clip, and the working room of the `in_flight` sources processed at once on this disk: each
    holds its download (its clips' section of the source, counted as large as its clips) and its
    clips before they are committed."""
    pixels = clip.width * clip.height * clip.fps * clip.seconds
    prior = pixels * BITS_PER_PIXEL / 8 + clip.audio_rate * clip.seconds * 4 * 0.6
    per_clip = committed / made if made else prior
    clips_left = left * clip.max_clips
    working = 2 * in_flight * clip.max_clips
    return round(per_clip * (2 * clips_left + made + working))
