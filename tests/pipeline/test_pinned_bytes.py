"""The bytes of a demo build are pinned: the fixed demo source set and settings give the same
shards, manifests, card, build.json and figures, before and after any change that must not alter
the corpus.

The build is the real `landscape-av build --demo` of the `full_demo_corpus` fixture (sources
rendered with a fixed seed, served on a fixed port in a network namespace of its own and built into
a relative folder, so that the URLs and paths the corpus records repeat) at a tiny size. The
digests hold for the releases in `pinned-tools.txt` beside this file, which write the bytes (the
ffmpeg binary of imageio-ffmpeg renders the sources and encodes every clip, one thread per
encoder); CI installs exactly those (PIP_CONSTRAINT) and sets LANDSCAPE_AV_REQUIRE_PINNED_BYTES=1,
so that there the test runs or fails, never skips. Elsewhere, with other releases, it skips and
names this environment's digests.

build.json records the versions of the tools that made the corpus, yt-dlp's among them, and the
card vouches for build.json's sha256: those two are pinned with the record of the versions (and the
card's checksum of build.json) set aside, and the record is checked against the tools that ran. So
a new yt-dlp, which downloads the same source bytes, changes no digest here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from landscape_av import __version__
from landscape_av.corpus.card import card_checksums
from landscape_av.ffmpeg import ffmpeg_exe

from ..conftest import FULL_DEMO_PORT

PINS = Path(__file__).with_name("pinned-tools.txt")
FFMPEG = (
    "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026 the FFmpeg developers"
)
"""The first line of `ffmpeg -version` of imageio-ffmpeg's binary at its pinned release."""
REQUIRE = "LANDSCAPE_AV_REQUIRE_PINNED_BYTES"

DIGESTS = {
    "README.md": "eb80956a86c2ecf01b97cddbf4afb33c971afd5b8ca3499cedbf68823e6b627a",
    "build.json": "ff69b591aa3d6b18204ee9ccc20fe7a69ddd3045864afa1a7188cb0419d3f2b6",
    "data/test-000000.tar": "1dd861fd9ee0e53bcc61c05ec61fb7d735729b80fa438c7966cbea42e156954d",
    "data/train-000000.tar": "fb646b379015fa92a4ee8aec2b3cb76db2ff53b4ca81c6f7e97ced72357a4009",
    "figures/class_balance.png": "a56fa6da6f1a9ee1c356deeea8e0db4e4e7260ef9cc92b43324979ba1163dbbb",
    "figures/loudness.png": "5b76f81c69e1822375ff79c1df672e593c08d98f5c5c8cfa50b57dc6fc076b8f",
    "figures/motion.png": "ae9c93d24b8829d991b5cd857dc13dcf4aa74f8e833647c3662e4009319be2ad",
    "figures/rejections.png": "807cabc7e5d08a2ee7e27418e906848d89fa2d4b6d33f59b4d5baa222eb72e3b",
    "figures/shard_sizes.png": "28bf2888e95ef18cc768800571450b21eea3352f1162946ddddbc0c39932daad",
    "manifests/clips.csv": "c7d956d7af2002ed4231943e5f359f48f948c713ef768caec0ad139bc50bab50",
    "manifests/clips.parquet": "937f59002f2bd589f906ea2afd8c3f982ee28a5eb6dd6da2efb13a304b51a6bb",
    "manifests/failures.csv": "29dbed5552f0c71db933fb63c5c9282290fc0e025c3007eeea20856f629819f1",
    "manifests/failures.parquet": "207179786d52f717432e3c614c2a1b891010a0c80ee71b8d1751745320ccd1e1",
    "manifests/shards.csv": "ba9339de6fdf2a9909d6e596590a65613eb737977edad4c75480935eed917ee6",
    "manifests/shards.parquet": "d55dc5ddfee1147efe287c8e4a798bc9e61754d281ebd7da8a3c3d5d5ec3d7cb",
    "manifests/sources.csv": "714847760ceef862d935a4a205b297a854bf21963465559bd42b05e9d1e4ca3f",
    "manifests/sources.parquet": "5b17cda187bd1d49d5be893e737c99046b2d34467f3ffacf79fd59636830ffdf",
}
"""sha256 of every file of the corpus but its work folder; build.json's and README.md's with the
tool versions set aside (`neutral`)."""


def pinned() -> dict[str, str]:
    """The releases of `pinned-tools.txt` (name -> version) and the ffmpeg binary's first line."""
    lines = [line.split("#")[0].strip() for line in PINS.read_text().splitlines()]
    pins = dict(line.split("==") for line in lines if line)
    return {"landscape_av": "0.1.0", "ffmpeg": FFMPEG} | pins


def ffmpeg_line() -> str:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0]


def tools() -> dict[str, str]:
    """The versions here of what `pinned()` names."""
    names = [name for name in pinned() if name not in ("landscape_av", "ffmpeg")]
    return {"landscape_av": __version__, "ffmpeg": ffmpeg_line()} | {n: version(n) for n in names}


def neutral(name: str, data: bytes) -> bytes:
    """`data` of the corpus file `name` with what records the tool versions set aside: build.json's
    `tools`, and the card's checksum of build.json."""
    if name == "build.json":
        record = json.loads(data)
        record["tools"] = {}
        return json.dumps(record, indent=1, sort_keys=True).encode() + b"\n"
    if name == "README.md":
        row = re.compile(rb"^(\| `build\.json` \| )[0-9a-f]{64}( \|)$", re.M)
        return row.sub(rb"\g<1>" + b"0" * 64 + rb"\g<2>", data)
    return data


@pytest.mark.slow
def test_demo_build_bytes_are_pinned(full_demo_corpus: Path):
    out = full_demo_corpus
    files = {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }
    # the parts set aside tell the truth: the tools that ran, the sha256 of build.json
    record = json.loads(files["build.json"])
    assert record["tools"] == {
        "ffmpeg": ffmpeg_line(),
        **{name: version(name) for name in ("av", "yt-dlp", "webdataset", "pyarrow")},
    }
    card = card_checksums(files["README.md"].decode())
    assert card["build.json"] == hashlib.sha256(files["build.json"]).hexdigest()

    digests = {
        name: hashlib.sha256(neutral(name, data)).hexdigest() for name, data in files.items()
    }
    why = ""
    if tools() != pinned():
        why = f"digests pinned with {pinned()}; here {tools()}"
    elif f"127.0.0.1:{FULL_DEMO_PORT}/" not in files["manifests/sources.csv"].decode():
        why = (
            f"the demo was not served on port {FULL_DEMO_PORT} (no private network namespace here)"
        )
    if why and digests != DIGESTS:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1, but {why} gives {digests}")
        pytest.skip(f"{why} gives {digests}")
    assert digests == DIGESTS
