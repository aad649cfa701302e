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
    "README.md": "00344b4a04d8715f503378c41e88d6a9b46b18a4be47f1f39ec01e9e6159ddcf",
    "build.json": "ebd8231694773da104221df581cc3053bb782e170f6c59e0d670d9e737295455",
    "data/test-000000.tar": "1dd861fd9ee0e53bcc61c05ec61fb7d735729b80fa438c7966cbea42e156954d",
    "data/train-000000.tar": "fb646b379015fa92a4ee8aec2b3cb76db2ff53b4ca81c6f7e97ced72357a4009",
    "figures/class_balance.png": "a56fa6da6f1a9ee1c356deeea8e0db4e4e7260ef9cc92b43324979ba1163dbbb",
    "figures/loudness.png": "5b76f81c69e1822375ff79c1df672e593c08d98f5c5c8cfa50b57dc6fc076b8f",
    "figures/motion.png": "ae9c93d24b8829d991b5cd857dc13dcf4aa74f8e833647c3662e4009319be2ad",
    "figures/rejections.png": "37fbe7458c04dfb5128a4f4e70e9cb27f051d40ec7afed6afc72472d21a301ab",
    "figures/shard_sizes.png": "28bf2888e95ef18cc768800571450b21eea3352f1162946ddddbc0c39932daad",
    "manifests/clips.csv": "c7d956d7af2002ed4231943e5f359f48f948c713ef768caec0ad139bc50bab50",
    "manifests/clips.parquet": "937f59002f2bd589f906ea2afd8c3f982ee28a5eb6dd6da2efb13a304b51a6bb",
    "manifests/failures.csv": "4db31b04175f2067341184dd0397fafee268edac471ec8663234df925d2549fa",
    "manifests/failures.parquet": "5d94ea00a2251b408a193dae0b7a70c96db22a16a88e606f996745898eb34822",
    "manifests/shards.csv": "ba9339de6fdf2a9909d6e596590a65613eb737977edad4c75480935eed917ee6",
    "manifests/shards.parquet": "d55dc5ddfee1147efe287c8e4a798bc9e61754d281ebd7da8a3c3d5d5ec3d7cb",
    "manifests/sources.csv": "2da4e67ec41a41af6159131cce63c52729d3b8f6032ee13f643b36736613abd6",
    "manifests/sources.parquet": "0423031e0db048df4ad45830c4ffe9ea75fbbed5b1f3e26e5263b0fd5e9b8f3c",
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
