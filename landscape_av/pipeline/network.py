"""The network watch: when the first sources all fail to download with the same network error
from one host (offline, HTTP 403/429), sources stop retrying it (`NetworkWatch`) and the build
stops within seconds (`check_network`), recording them as `network` failures for the next run."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from landscape_av.pipeline.exits import EXIT_NETWORK, BuildStopped
from landscape_av.pipeline.outcome import Outcome
from landscape_av.sources.source_list import Source

NETWORK_PROBE = 3
"""The build stops when this many first sources all fail alike on the network."""
NETWORK_REASONS = frozenset({"connection", "timeout", "http_403", "http_429", "blocked"})


class NetworkWatch:
    """Failed download attempts in a row with the same network error from the same host, no
    download done in between: from `NETWORK_PROBE` on, sources stop retrying such errors, so that
    the first sources fail in seconds and `check_network` stops the build."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.count = 0
        self.lock = threading.Lock()

    def give_up(self, reason: str, url: str) -> bool:
        if reason not in NETWORK_REASONS:
            return False
        key = (reason, urlsplit(url).netloc)
        with self.lock:
            self.count = self.count + 1 if key == self.key else 1
            self.key = key
            return self.count >= NETWORK_PROBE

    def succeeded(self) -> None:
        with self.lock:
            self.key, self.count = None, 0


def check_network(
    tried: list[Outcome], sources: Sequence[Source], outcomes: dict[str, Outcome], log_path: Path
) -> None:
    """Stop the build (BuildStopped, EXIT_NETWORK) when the first sources tried all failed to
    download with the same network error from the same host: each of them, and every source not
    tried, is recorded as a `network` failure, which the next run retries."""
    keys = {_network_key(o) for o in tried}
    if len(keys) != 1 or None in keys:
        return
    reason, host = keys.pop()
    for o in tried:
        o.reason, o.detail = "network", f"{reason}: {o.detail}"
    for s in sources:
        if s.source_id not in outcomes:
            why = f"not tried: the first {len(tried)} sources all failed with {reason} from {host}"
            outcomes[s.source_id] = Outcome(s, "", "failed", "download", "network", why)
    raise BuildStopped(
        EXIT_NETWORK,
        f"the first {len(tried)} sources all failed to download with {reason} from {host}: "
        "offline or blocked? Check the connection (for HTTP 403/429: wait, or pass --cookies) "
        f"and run the same command again (yt-dlp's log: {log_path})",
    )


def _network_key(outcome: Outcome) -> tuple[str, str] | None:
    if outcome.stage != "download" or outcome.reason not in NETWORK_REASONS:
        return None
    return outcome.reason, urlsplit(outcome.source.url).netloc
