"""The bytes of a demo build are pinned: the fixed demo source set and settings give the same
shards, manifests, card, build.json and figures, before and after any change that must not alter
the corpus.

The build is the real `landscape-av build --demo` (sources rendered with a fixed seed, served on a
fixed port and built into a relative folder, so that the URLs and paths the corpus records repeat)
at a tiny size. The digests hold for the tools they were taken with (`TOOLS`): the ffmpeg binary of
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
from click.testing import CliRunner

from landscape_av import __version__
from landscape_av.cli import main
from landscape_av.ffmpeg import ffmpeg_exe

PORT = "8799"
"""Not the demo's default port, so that a user's own `build --demo` does not collide."""
OPTIONS = ("--size", "128x72", "--min-size", "128x72", "--max-clips", "1", "--workers", "2")
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
    "README.md": "e3bb05f151a2402c108dbae706104773d8c81fb4a42d1578883f49020b77bfbb",
    "build.json": "fa3bd8e158cd58da40ea8a176cd4cab4e06ed49b9ded6aa73f82cbf1beaa2dda",
    "data/test-000000.tar": "09fa218f641cdacd6c78b89fdced89553980e22c03982665cf2a97fc29ea99ef",
    "data/train-000000.tar": "e7de0cc96ef8397b4216648a151856661d1f43d4fc3dd043c71216bbc48d7003",
    "figures/class_balance.png": "f330bfd6d1350b36cfc00a627633cfaf2bd1adaad67ffaa6610405209ff626f0",
    "figures/loudness.png": "2a1772309ae6e2d16962bd5c029e0333d0e973231924cb4c4e75155b43b6fac1",
    "figures/motion.png": "54b47628343f6e329bfd750c83b33bb8d1b403285f82b4cc07fe4728c819b6d0",
    "figures/rejections.png": "37fbe7458c04dfb5128a4f4e70e9cb27f051d40ec7afed6afc72472d21a301ab",
    "figures/shard_sizes.png": "d1a8ac798ca75d7fd2dd69d03bcdb44ba4d8296a21dd961d27b5b3f1b4deab5e",
    "manifests/clips.csv": "b0b8cac85b8b6b3510a2c0835063c802f1b18b5ee2f45698049d2fb6fef6876b",
    "manifests/clips.parquet": "dbc403d8228a21926032c745415858e3d8cf3af21b97385ecda0e4c467d1cbf2",
    "manifests/failures.csv": "79cd82249c52b7b6fdb2ae59e4fa227f40762135ba4c3e4bdf59ad6b5f614476",
    "manifests/failures.parquet": "0999f0fea92cfe2918bb761dd65d6f2a72c938d2a96a7b5068d2a62d8234d12f",
    "manifests/shards.csv": "9b586f7a4db3e27fac35c48bec3dd3b806b6d7dcf71786e5d4ac223e939c59f8",
    "manifests/shards.parquet": "b7d90b77c2568b46f42b74c4adc787d9d439cfe0a0a4e46be02f1eee4cff3cdb",
    "manifests/sources.csv": "17a68e576f415f28187db5f735271c394388d49f6288e6bc5e0b89ad7f608ec3",
    "manifests/sources.parquet": "39cb5464a078e3aff00b696eb7dfbabfa42f7ce62c7dbdd10ce83c94f5ba8c78",
}


def tools() -> dict[str, str]:
    """The versions the corpus bytes depend on."""
    line = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    names = [name for name in TOOLS if name not in ("landscape_av", "ffmpeg")]
    return {"landscape_av": __version__, "ffmpeg": line} | {n: version(n) for n in names}


def test_demo_build_bytes_are_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    args = ["build", "--demo", "--demo-port", PORT, *OPTIONS, "--out", "corpus", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tmp_path / "corpus"
    digests = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }
    if digests != DIGESTS and tools() != TOOLS:
        pytest.skip(f"digests pinned with {TOOLS}; here {tools()} gives {digests}")
    assert digests == DIGESTS
