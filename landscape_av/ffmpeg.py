"""Locate ffmpeg and run it with a clear error.

The binary is the static one shipped in the imageio-ffmpeg wheel (there is no system ffmpeg to rely
on); `LANDSCAPE_AV_FFMPEG` overrides it with a path or a command name found on PATH.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from landscape_av.processes import Stopped, child, stopping

ENV_VAR = "LANDSCAPE_AV_FFMPEG"
STDERR_TAIL_LINES = 20


class FFmpegError(RuntimeError):
    """ffmpeg could not be found, or a run of it failed; `stderr_tail` holds its last lines."""

    def __init__(
        self, message: str, *, returncode: int | None = None, stderr_tail: str = ""
    ) -> None:
        super().__init__(message + (f"\n{stderr_tail}" if stderr_tail else ""))
        self.returncode = returncode
        self.stderr_tail = stderr_tail


@functools.cache
def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg binary: `$LANDSCAPE_AV_FFMPEG` if set, else imageio-ffmpeg's."""
    override = os.environ.get(ENV_VAR)
    if override:
        found = shutil.which(override) or (override if Path(override).is_file() else None)
        if found is None:
            raise FFmpegError(f"{ENV_VAR}={override!r} is neither an executable file nor on PATH")
        return str(Path(found).resolve())
    try:
        import imageio_ffmpeg
    except ImportError as e:  # a declared dependency, but say what to do if it is missing
        raise FFmpegError(
            f"imageio-ffmpeg is not installed ({e}); pip install imageio-ffmpeg"
        ) from e
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise FFmpegError(f"imageio-ffmpeg found no ffmpeg binary: {e}; set {ENV_VAR}") from e


def run_ffmpeg(args: Sequence[str | os.PathLike[str]], *, timeout: float | None = None) -> str:
    """Run `ffmpeg -hide_banner -nostdin -loglevel error -y <args>` as a `processes.child`; raise
    FFmpegError on failure (Stopped when the build stopped it). Returns what ffmpeg reported on
    stderr (its errors, such as the decode errors it conceals and still exits 0 after).

    `args` is everything after the global options (inputs, filters, outputs). The error message
    names the command and carries the tail of ffmpeg's stderr.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    with child(cmd, text=True, errors="replace", **pipes) as proc:
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise FFmpegError(f"ffmpeg timed out after {timeout} s: {_show(cmd)}") from e
    if stopping():
        raise Stopped("the build is stopping")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        raise FFmpegError(
            f"ffmpeg failed (exit {proc.returncode}): {_show(cmd)}",
            returncode=proc.returncode,
            stderr_tail=tail,
        )
    return stderr


def _show(cmd: Sequence[str], limit: int = 400) -> str:
    text = subprocess.list2cmdline(cmd)
    return text if len(text) <= limit else text[: limit - 3] + "..."
