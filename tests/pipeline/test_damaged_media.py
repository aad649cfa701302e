"""A damaged source fails as a `decode_error` in every container the build accepts, though ffmpeg
conceals what it cannot decode and exits 0: a WebM whose first 10 s hold random bytes (its
demuxer steps over them, so the section copy came out clean and short: a clip of less motion), and
an MP4 whose video packets hold random bytes (copied as they are, then concealed by the decoder)."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import av
import pytest

from landscape_av.pipeline.clip import ClipOptions, cut_clips

from .conftest import write_media_list

CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]
WEBM = "video_landscape-animated__moviepy__big_buck_bunny_0_30.webm"  # 1280x720 VP8/Vorbis, 30 s


def damaged_copy(data: bytes, start: int, length: int, seed: int) -> bytes:
    """`data` with `length` random bytes written over it from `start`."""
    out = bytearray(data)
    out[start : start + length] = random.Random(seed).randbytes(length)
    return bytes(out)


@pytest.mark.slow
def test_a_damaged_webm_is_a_decode_error_and_its_clean_original_clips(
    shared_media: Path, build_media: Path, media_server: str, tmp_path: Path
):
    clean = (shared_media / WEBM).read_bytes()
    first_10_s = len(clean) // 3  # 30 s of video: a third of the file
    (build_media / "clean.webm").write_bytes(clean)
    for i in range(3):  # random bytes at three places of its first 10 s
        start = random.Random(i).randrange(len(clean) // 20, first_10_s - 20_000)
        (build_media / f"damaged{i}.webm").write_bytes(damaged_copy(clean, start, 20_000, i))
    rows = [("clean", f"{media_server}clean.webm", "raining")]
    rows += [(f"damaged{i}", f"{media_server}damaged{i}.webm", "raining") for i in range(3)]
    source_list = write_media_list(tmp_path / "sources.csv", rows)
    out = tmp_path / "corpus"
    cmd = [*CLI, "build", "--source-list", str(source_list), "--out", str(out), "--quiet"]
    cmd += ["--size", "320x180", "--max-clips", "1", "--retries", "0", "--max-failure-rate", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {r["source_id"]: r for r in _csv(out / "manifests" / "sources.csv")}
    assert rows["clean"]["status"] == "clipped"
    for i in range(3):
        assert (rows[f"damaged{i}"]["status"], rows[f"damaged{i}"]["reason"]) == (
            "failed",
            "decode_error",
        )
    failures = {r["source_id"]: r for r in _csv(out / "manifests" / "failures.csv")}
    assert "the file is damaged" in failures["damaged0"]["detail"]


def test_damaged_video_packets_fail_the_clip_stage(build_media: Path, tmp_path: Path):
    """An MP4's container is whole, its audio clean; random bytes inside video packets of its
    first clip: the clip stage's decode reports them."""
    from landscape_av.pipeline.clip import DamagedSource

    source = build_media / "good2.mp4"
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        packets = [p for p in container.demux(video) if p.size > 2000 and p.pos is not None]
    data = bytes(source.read_bytes())
    for k, packet in enumerate(packets[5:60:10]):  # inside a few frames, past their headers
        data = damaged_copy(data, packet.pos + 100, packet.size - 200, k)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    opts = ClipOptions(width=320, height=180, max_clips=1)
    with pytest.raises(DamagedSource, match="could not decode"):
        cut_clips(damaged, 0.0, 1, ["d_00"], tmp_path / "clips", opts)
    clips = cut_clips(source, 0.0, 1, ["g_00"], tmp_path / "good", opts)  # the original: exact
    assert len(clips) == 1


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
