"""How a build ends without a corpus: `BuildStopped` and the exit codes of `landscape-av build`.

Every code but 0 leaves the corpus in OUT as it was; the build's failures so far are then in
`OUT/.work/manifests/failures.csv`.
"""

from __future__ import annotations

EXIT_NO_CLIPS = 3
EXIT_FAILURES = 4
EXIT_NETWORK = 5
EXIT_OUTPUT = 6
EXIT_REFUSED = 7
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    0: "the corpus was built (or was already there)",
    1: "a source list that cannot be read (or, with --demo, served: its port is taken), or an "
    "unexpected error",
    2: "a bad option",
    EXIT_NO_CLIPS: "no clip was made",
    EXIT_FAILURES: "more sources failed than --max-failure-rate allows, or fewer clips were made "
    "than the corpus in OUT holds",
    EXIT_NETWORK: "the first sources all failed with the same network error (offline, blocked)",
    EXIT_OUTPUT: "the output could not be written (disk full, read-only, no permission)",
    EXIT_REFUSED: "OUT holds something that is not this build's corpus",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
"""Exit codes of `landscape-av build`: all but 0 leave the corpus in OUT as it was."""


class BuildStopped(Exception):
    """The build committed no corpus (or could not write one); `code` is its exit code (see
    `EXIT_CODES`) and str(e) the one-line summary."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
