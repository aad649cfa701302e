"""The bytes of a demo build are pinned: the fixed demo source set and settings give the same
shards, manifests, card, build.json and figures, before and after any change that must not alter
the corpus.

The build is the real `landscape-av build --demo` of the `full_demo_corpus` fixture (sources
rendered with a fixed seed, served on a fixed port and built into a relative folder, so that the
URLs and paths the corpus records repeat) at a tiny size. The digests hold for the tools they were taken with (`TOOLS`): the ffmpeg binary of
imageio-ffmpeg renders the sources and encodes every clip (one thread per encoder), the others write
or are recorded in the files. CI runs the same image, hence the same tools. Where the tools differ
and so do the bytes, the test skips and names this environment's digests, to re-pin them.
"""

from __future__ import annotations

import hashlib
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from landscape_av import __version__
from landscape_av.ffmpeg import ffmpeg_exe

TOOLS = {
    "landscape_av": "0.1.0",
    "ffmpeg": "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026 the FFmpeg developers",
    "av": "18.1.0",
    "imageio-ffmpeg": "0.8.1",
    "yt-dlp": "2026.10.26",
    "webdataset": "1.0.2",
    "pyarrow": "26.0.1",
    "pandas": "3.1.1",
    "numpy": "2.4.6",
    "matplotlib": "3.11.2",
}
DIGESTS = {
    "README.md": "9f2484c923d97abf5bfba23c2e2465f2cb2482ce3b1edb39636857167e607a9f",
    "build.json": "8075ce1fa54d88771658ac4935787fc3dfb8b5935b3478d23f97ff0bed8e567c",
    "data/test-000000.tar": "1dd861fd9ee0e53bcc61c05ec61fb7d735729b80fa438c7966cbea42e156954d",
    "data/train-000000.tar": "fb646b379015fa92a4ee8aec2b3cb76db2ff53b4ca81c6f7e97ced72357a4009",
    "figures/class_balance.png": "3f6368c53eb4d3a80dbe4a6ee6724bb1975938a71554ec2bad0b077031e18e43",
    "figures/loudness.png": "ac8434cc87c866c475da7b360c3b8bc08187d0aa9da6a36a0471abc7fd14f3d3",
    "figures/motion.png": "2ef01b7b15c8c9f15df7de7b49af56e531ec5221f9b87dedbca1a5b4a75f403d",
    "figures/rejections.png": "37fbe7458c04dfb5128a4f4e70e9cb27f051d40ec7afed6afc72472d21a301ab",
    "figures/shard_sizes.png": "50a07b43a959d32da39b2b2df6bce057649dedf4abe16f0c0edf5ed3960b10fd",
    "manifests/clips.csv": "c7d956d7af2002ed4231943e5f359f48f948c713ef768caec0ad139bc50bab50",
    "manifests/clips.parquet": "937f59002f2bd589f906ea2afd8c3f982ee28a5eb6dd6da2efb13a304b51a6bb",
    "manifests/failures.csv": "4db31b04175f2067341184dd0397fafee268edac471ec8663234df925d2549fa",
    "manifests/failures.parquet": "5d94ea00a2251b408a193dae0b7a70c96db22a16a88e606f996745898eb34822",
    "manifests/shards.csv": "ba9339de6fdf2a9909d6e596590a65613eb737977edad4c75480935eed917ee6",
    "manifests/shards.parquet": "d55dc5ddfee1147efe287c8e4a798bc9e61754d281ebd7da8a3c3d5d5ec3d7cb",
    "manifests/sources.csv": "2da4e67ec41a41af6159131cce63c52729d3b8f6032ee13f643b36736613abd6",
    "manifests/sources.parquet": "0423031e0db048df4ad45830c4ffe9ea75fbbed5b1f3e26e5263b0fd5e9b8f3c",
}


def tools() -> dict[str, str]:
    """The versions the corpus bytes depend on."""
    line = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    names = [name for name in TOOLS if name not in ("landscape_av", "ffmpeg")]
    return {"landscape_av": __version__, "ffmpeg": line} | {n: version(n) for n in names}


@pytest.mark.slow
def test_demo_build_bytes_are_pinned(full_demo_corpus: Path):
    out = full_demo_corpus
    digests = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }
    if digests != DIGESTS and tools() != TOOLS:
        pytest.skip(f"digests pinned with {TOOLS}; here {tools()} gives {digests}")
    assert digests == DIGESTS
