"""`landscape-av view` without a browser: the shard index, the JSON under /api/, member bytes and
ranges as the server sends them, its refusals, the command's exits, the static export.

The browser itself drives the page in test_view_browser.py."""

from __future__ import annotations

import gzip
import io
import json
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.corpus import Corpus, read_shard
from landscape_av.corpus.corpus import index_shard
from landscape_av.corpus.manifests import write_manifest
from landscape_av.corpus.tar_reader import BOUNDS
from landscape_av.corpus.view import CorpusView, ExportOptions, export_view
from landscape_av.corpus.view_server import byte_range

from .conftest import http_get, serve_view

CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]


def _rchar() -> int:
    """Bytes this process has read through read(2) and alike so far (Linux)."""
    return int(re.search(r"rchar: (\d+)", Path("/proc/self/io").read_text()).group(1))


def _members(folder: Path) -> dict[tuple[str, str], bytes]:
    """Every member of the corpus's shards, by (key, extension), read by the streaming reader."""
    return {
        (sample.key, ext): data
        for shard in Corpus(folder).shards()
        for sample in read_shard(shard)
        for ext, data in sample.members.items()
    }


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.USTAR_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


# --- the shard index ----------------------------------------------------------------------------


def test_the_index_places_every_member_where_tarfile_does(demo_corpus: Path) -> None:
    for shard in Corpus(demo_corpus).shards():
        index = index_shard(shard)
        with tarfile.open(shard) as tar:
            expected = {tuple(m.name.split(".", 1)): (m.offset_data, m.size) for m in tar}
        found = {(k, e): (m.offset, m.size) for k, exts in index.items() for e, m in exts.items()}
        assert found == expected
        with open(shard, "rb") as f:
            for sample in read_shard(shard):
                for ext, data in sample.members.items():
                    f.seek(index[sample.key][ext].offset)
                    assert f.read(index[sample.key][ext].size) == data


def test_indexing_reads_the_headers_alone(tmp_path: Path) -> None:
    path = tmp_path / "big.tar"
    big = tarfile.TarInfo("clip_00.mp4")
    big.size = 100 << 20
    with open(path, "wb") as f:  # a 100 MB member, sparse on disk: only its header is written
        f.write(big.tobuf(tarfile.USTAR_FORMAT))
        f.seek(512 + big.size)
        f.write(
            _file("clip_00.json", b"{}")[0].tobuf(tarfile.USTAR_FORMAT) + b"{}".ljust(512, b"\0")
        )
        f.write(b"\0" * 1024)
    before = _rchar()
    index = index_shard(path)
    assert _rchar() - before < 64 << 10
    assert index["clip_00"]["mp4"].size == big.size
    assert index["clip_00"]["json"].offset == 512 + big.size + 512


def test_hostile_or_damaged_tars_are_bounded_and_named(tmp_path: Path) -> None:
    def index(path: Path, **kw) -> tuple[dict, list[str]]:
        problems: list[str] = []
        found = index_shard(path, report=lambda k, m, msg: problems.append(msg), **kw)
        return {k: sorted(v) for k, v in found.items()}, problems

    many = _tar(tmp_path / "many.tar", [_file(f"k{i:03d}.json", b"{}") for i in range(30)])
    found, problems = index(many, max_entries=10)
    assert len(found) == 10 and problems == ["over 10 tar entries: the rest is not read"]

    bomb = tarfile.TarInfo("././@PaxHeader")
    bomb.type, bomb.size = tarfile.XHDTYPE, BOUNDS.pax_bytes + 1
    bomb_path = tmp_path / "bomb.tar"
    bomb_path.write_bytes(bomb.tobuf(tarfile.USTAR_FORMAT) + b"9" * (bomb.size + 1024))
    before = _rchar()
    found, problems = index(bomb_path)
    assert _rchar() - before < 16 << 10  # the header was not read
    assert found == {} and "a PAX header of 65,537 bytes at byte 0" in problems[0]

    cut = _tar(tmp_path / "cut.tar", [_file("a_00.jpg", b"x" * 5000), _file("b_00.jpg", b"y")])
    cut.write_bytes(cut.read_bytes()[:3000])
    found, problems = index(cut)
    assert found == {} and problems == [
        "truncated: the file ends inside 'a_00.jpg': the rest is not read"
    ]

    link = tarfile.TarInfo("c_00.mp4")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    odd = [_file("../up_00.jpg", b"x"), _file("/abs_00.jpg", b"x"), (link, None)]
    odd += [_file("ok_00.jpg", b"1"), _file("ok_00.jpg", b"2")]
    path = _tar(tmp_path / "odd.tar", odd)
    found, problems = index(path)
    assert found == {"ok_00": ["jpg"]}
    assert [p.split(":")[0] for p in problems[:3]] == [
        "unexpected tar entry '../up_00.jpg'",
        "unexpected tar entry '/abs_00.jpg'",
        "unexpected tar entry 'c_00.mp4'",
    ]
    assert problems[3] == "unexpected tar entry 'ok_00.jpg': appears twice in its sample"
    with open(path, "rb") as f:  # the first copy is kept, as read_shard keeps it
        f.seek(index_shard(path, report=lambda *a: None)["ok_00"]["jpg"].offset)
        assert f.read(1) == b"1"
    assert next(read_shard(path, report=lambda *a: None)).members["jpg"] == b"1"

    gz = tmp_path / "gz.tar"  # offsets in a compressed stream are no places in the file
    gz.write_bytes(gzip.compress(_tar(tmp_path / "e.tar", [_file("e_00.jpg", b"x")]).read_bytes()))
    found, problems = index(gz)
    assert found == {} and "a compressed shard" in problems[0]

    damaged = bytearray(_tar(tmp_path / "sum.tar", [_file("d_00.jpg", b"x")]).read_bytes())
    damaged[148:156] = b"0000000\0"  # a wrong header checksum
    (tmp_path / "sum.tar").write_bytes(damaged)
    found, problems = index(tmp_path / "sum.tar")
    assert found == {} and "not a tar header at byte 0 (bad checksum)" in problems[0]
    with pytest.raises(ValueError, match=r"sum.tar: not a tar header at byte 0 \(bad checksum\)"):
        index_shard(tmp_path / "sum.tar")


def test_pax_names_are_read_as_tarfile_reads_them(tmp_path: Path) -> None:
    info, data = _file("ustar_name_00.mp4", b"video")
    info.pax_headers = {"path": "pax_name_00.mp4", "comment": "x" * 300}
    path = _tar(
        tmp_path / "pax.tar", [(info, data), _file("plain_00.json", b"{}")], tarfile.PAX_FORMAT
    )
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names == ["pax_name_00.mp4", "plain_00.json"]
    index = index_shard(path)
    assert sorted(index) == ["pax_name_00", "plain_00"]
    with open(path, "rb") as f:
        f.seek(index["pax_name_00"]["mp4"].offset)
        assert f.read(5) == b"video"


# --- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(demo_corpus: Path):
    with serve_view(demo_corpus) as server:
        yield server


def _json(url: str) -> dict:
    status, _, body = http_get(url)
    assert status == 200, body
    return json.loads(body)


def test_the_api_lists_every_clip_as_the_manifests_do(served, manifests) -> None:
    clips, sources = manifests["clips"], manifests["sources"].set_index("source_id")
    groups = _json(f"{served.url}api/groups")["groups"]
    expected = clips.groupby(["class", "split"]).size().to_dict()
    assert {(g["class"], g["split"]): g["clips"] for g in groups} == expected
    listed = _json(f"{served.url}api/clips?limit=500")
    assert listed["total"] == len(clips)
    by_key = {c["key"]: c for c in listed["clips"]}
    assert sorted(by_key) == sorted(clips["key"])
    for row in clips.to_dict("records"):
        clip = by_key[row["key"]]
        for column in ("class", "split", "source_id", "start", "loudness_db", "motion", "shard"):
            assert clip[column] == row[column]
        source = sources.loc[row["source_id"]]
        assert clip["source"]["url"] == source["url"]
        assert clip["source"]["license"] == source["license"]
        assert clip["members"] == {
            e: f"/media/{row['key']}.{e}" for e in ("mp4", "flac", "json", "jpg")
        }
    failures = _json(f"{served.url}api/failures")["failures"]
    assert failures == manifests["failures"].to_dict("records")
    summary = _json(f"{served.url}api/summary")
    assert summary["stats"]["totals"]["clips"] == len(clips)
    assert summary["title"] and "demo" in summary["summary"]
    assert {f["name"] for f in summary["figures"]} == {
        p.stem for p in (Path(summary["location"]) / "figures").glob("*.png")
    }


def test_filters_and_pages_cut_the_list_exactly(served, manifests) -> None:
    clips = manifests["clips"]
    everything = _json(f"{served.url}api/clips?limit=500")["clips"]
    pages = [_json(f"{served.url}api/clips?offset={i}&limit=2")["clips"] for i in range(0, 8, 2)]
    assert [c["key"] for page in pages for c in page] == [c["key"] for c in everything]
    test_raining = clips[(clips["class"] == "raining") & (clips["split"] == "test")]
    got = _json(f"{served.url}api/clips?class=raining&split=test")
    assert [c["key"] for c in got["clips"]] == list(test_raining["key"]) and got["total"] == 1
    wanted = clips[clips["source_id"].str.lower().str.contains("storm_te")]
    got = _json(f"{served.url}api/clips?q=STORM_TE")  # a search on the source id, any case
    assert sorted(c["key"] for c in got["clips"]) == sorted(wanted["key"]) and len(wanted) > 0
    assert _json(f"{served.url}api/groups?q=STORM_TE")["groups"] == [
        {"class": "thunderstorm", "split": "test", "clips": len(wanted)}
    ]
    assert http_get(f"{served.url}api/clips?offset=-1")[0] == 400
    assert http_get(f"{served.url}api/nothing")[0] == 404


def test_members_come_out_byte_exact_with_ranges(served, demo_corpus: Path) -> None:
    types = {
        "mp4": "video/mp4",
        "flac": "audio/flac",
        "jpg": "image/jpeg",
        "json": "application/json",
    }
    for (key, ext), data in _members(demo_corpus).items():
        status, headers, body = http_get(f"{served.url}media/{key}.{ext}")
        assert (status, body, headers["Content-Type"]) == (200, data, types[ext])
        assert headers["Accept-Ranges"] == "bytes"
    key = Corpus(demo_corpus).manifest("clips")["key"].iloc[0]
    mp4 = _members(demo_corpus)[(key, "mp4")]
    url, size = f"{served.url}media/{key}.mp4", len(mp4)
    for header, start, stop in [
        ("bytes=0-0", 0, 1),
        ("bytes=1000-4095", 1000, 4096),
        ("bytes=5000-", 5000, size),
        ("bytes=-700", size - 700, size),
        (f"bytes={size - 10}-{size + 5000}", size - 10, size),
    ]:
        status, headers, body = http_get(url, {"Range": header})
        assert status == 206, header
        assert body == mp4[start:stop] and headers["Content-Length"] == str(stop - start)
        assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
    status, headers, _ = http_get(url, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert http_get(url, {"Range": "bytes=0-1,5-6"})[2] == mp4  # several ranges: the whole
    status, headers, body = http_get(url, method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(size))
    assert http_get(url, {"If-None-Match": headers["ETag"]})[0] == 304
    status, _, body = http_get(url, {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert (status, body) == (200, mp4)


def test_only_its_own_address_is_answered(served) -> None:
    status, headers, body = http_get(f"{served.url}api/summary", {"Host": "evil.example"})
    assert status == 403 and b"demo" not in body
    port = served.server_port
    assert http_get(f"{served.url}api/summary", {"Host": f"localhost:{port}"})[0] == 200
    for path in ("media/..%2F..%2Fetc%2Fpasswd", "static/../view.py", "figures/../build.png", "x"):
        status, headers, _ = http_get(f"{served.url}{path}")
        assert status == 404, path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert http_get(f"{served.url}media/demo_raining_00.tar")[0] == 404


def test_byte_range_follows_rfc_9110() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=10-19", 100) == (10, 20)
    assert byte_range("bytes=90-", 100) == (90, 100)
    assert byte_range("bytes=-30", 100) == (70, 100)
    assert byte_range("bytes=-300", 100) == (0, 100)
    assert byte_range("bytes=20-10", 100) is None  # invalid: ignored
    assert byte_range("items=0-1", 100) is None
    assert byte_range("bytes=+1-2", 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=-0", "bytes=200-300"):
        with pytest.raises(ValueError):
            byte_range(unsatisfiable, 100)


def test_hostile_manifests_are_named_and_not_served(corpus_copy: Path) -> None:
    corpus = Corpus(corpus_copy)
    clips = corpus.manifest("clips").to_dict("records")
    clips[0]["key"] = "<b>bad</b>"
    clips[1]["shard"] = "../../../etc/passwd"
    write_manifest(corpus_copy, "clips", clips)
    lines: list[str] = []
    view = CorpusView(Corpus(corpus_copy), warn=lines.append)
    assert lines == [
        "manifests/clips.parquet row 0: key '<b>bad</b>' is not a sample key: its media are not served",
        "manifests/clips.parquet row 1: shard '../../../etc/passwd' is not a shard file name: not served",
    ]
    assert view.locate(clips[1]["key"], "jpg") is None
    assert view.locate(clips[2]["key"], "jpg") is not None
    assert len(view.clips) == len(clips)  # shown all the same, without media


def test_a_damaged_shard_is_named_and_the_rest_served(corpus_copy: Path) -> None:
    corpus = Corpus(corpus_copy)
    shard = corpus.shards("train")[0]
    members = _members(corpus_copy)
    places = {(k, e): m for k, exts in index_shard(shard).items() for e, m in exts.items()}
    last = max(places, key=lambda km: places[km].offset)
    with open(shard, "r+b") as f:  # cut the shard inside its last member
        f.truncate(places[last].offset + 10)
    lines: list[str] = []
    view = CorpusView(corpus, warn=lines.append)
    assert view.locate(*last) is None
    for key, ext in places:
        if (key, ext) != last:
            assert view.member_bytes(key, ext) == members[(key, ext)]
    assert lines == [
        f"data/{shard.name}: truncated: the file ends inside '{'.'.join(last)}': "
        "the rest is not read"
    ]


def test_a_corpus_at_a_url_is_read_through_its_local_copy(
    demo_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    import fsspec

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    for entry in demo_corpus.iterdir():
        if entry.name != ".work":
            fs.put(str(entry), f"/view-test/corpus/{entry.name}", recursive=entry.is_dir())
    try:
        view = CorpusView(Corpus("memory://view-test/corpus"), warn=lambda line: None)
        key = view.clips[0]["key"]
        assert view.member_bytes(key, "jpg") == _members(demo_corpus)[(key, "jpg")]
        fetched = {p.name for p in (view.corpus.folder / "data").iterdir()}
        assert fetched == {view.clips[0]["shard"]}  # the shard it needed, and no other
        assert view.summary["location"] == "memory://view-test/corpus"
    finally:
        fs.rm("/view-test", recursive=True)


# --- the command --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_serves_until_ctrl_c(demo_corpus: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "view", str(demo_corpus), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert f"Serving {demo_corpus} at {url}" in line
        assert _json(f"{url}api/summary")["location"] == str(demo_corpus)
        busy = subprocess.run(
            [*CLI, "view", str(demo_corpus), "--port", url.rsplit(":", 1)[1].strip("/")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode == 1 and "is in use: pick another with --port" in busy.stderr
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert time.monotonic() - start < 5
        assert "stopped" in proc.stderr.read() and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_corpus_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["view", str(tmp_path)])
    assert result.exit_code == 1
    assert "is missing: is" in result.output and "a built corpus?" in result.output


# --- the static export --------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_an_export_is_never_written_into_the_corpus(corpus_copy: Path) -> None:
    before = _snapshot(corpus_copy)
    for inside in (corpus_copy, corpus_copy / "export", corpus_copy / "data" / "x"):
        result = CliRunner().invoke(main, ["view", str(corpus_copy), "--export", str(inside)])
        assert result.exit_code == 2 and "is inside the corpus folder" in result.output
    (corpus_copy.parent / "notes").mkdir()
    (corpus_copy.parent / "notes" / "mine.txt").write_text("mine")
    result = CliRunner().invoke(
        main, ["view", str(corpus_copy), "--export", str(corpus_copy.parent / "notes")]
    )
    assert result.exit_code == 2 and "holds no earlier export" in result.output
    result = CliRunner().invoke(
        main, ["view", str(corpus_copy), "--export", str(corpus_copy.parent)]
    )
    assert result.exit_code == 2 and "holds the corpus folder" in result.output
    assert _snapshot(corpus_copy) == before
    assert (corpus_copy.parent / "notes" / "mine.txt").read_text() == "mine"


@pytest.mark.slow
def test_the_export_holds_the_page_thumbnails_and_previews(
    demo_corpus: Path, manifests, tmp_path: Path
) -> None:
    before = _snapshot(demo_corpus)
    view = CorpusView(Corpus(demo_corpus), warn=lambda line: None)
    dest = tmp_path / "look"
    count = export_view(
        view, dest, ExportOptions(preview_seconds=2, preview_height=90, per_group=1)
    )
    clips = manifests["clips"]
    firsts = clips.groupby(["class", "split"], sort=False).head(1)
    assert count == len(firsts) == 4
    text = (dest / "data.js").read_text()
    data = json.loads(text.removeprefix("window.LANDSCAPE_VIEW = ").removesuffix(";\n"))
    assert sorted(c["key"] for c in data["clips"]) == sorted(firsts["key"])
    assert data["failures"] == manifests["failures"].to_dict("records")
    assert data["summary"]["export"] == {
        "clips": 4,
        "of": len(clips),
        "preview_seconds": 2,
        "per_group": 1,
    }
    members = _members(demo_corpus)
    for clip in data["clips"]:
        key = clip["key"]
        assert clip["members"] == {"jpg": f"thumbs/{key}.jpg", "mp4": f"previews/{key}.mp4"}
        assert (dest / "thumbs" / f"{key}.jpg").read_bytes() == members[(key, "jpg")]
        with av.open(str(dest / "previews" / f"{key}.mp4")) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            assert video.height == 90
            assert float(container.duration / 1e6) == pytest.approx(2.0, abs=0.1)
    html = (dest / "index.html").read_text()
    assert '<script src="data.js"></script>' in html and "static/view.js" in html
    assert (dest / "static" / "view.js").is_file() and (dest / "figures" / "loudness.png").is_file()
    assert not any(p.name.startswith(".look") for p in tmp_path.iterdir())  # no staging left
    again = export_view(view, dest, ExportOptions(preview_seconds=0))  # replaces the earlier one
    assert again == len(clips) and not any((dest / "previews").iterdir())
    assert _snapshot(demo_corpus) == before
