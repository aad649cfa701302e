"""`build --out s3://...` against a real S3-compatible server (moto, on 127.0.0.1): the bucket gets the
very bytes of a local build, a killed build resumes from what reached the bucket (on another
machine too: a fresh work folder), no credential is written anywhere, and stats, verify,
export-frames and `load_dataset` read the corpus in the bucket."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from landscape_av.pipeline.build import CRASH_ENV, EXIT_OUTPUT, EXIT_REFUSED
from landscape_av.storage import JOURNAL, PUBLISH_DIR

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]
OPTIONS += ["--workers", "2", "--quiet"]
ROWS = [
    ("good", "good.mp4", "raining", "train"),  # 2 clips
    ("good2", "good2.mp4", "fire crackling", "test"),  # 1 clip
    ("lowres", "lowres.mp4", "wind noise", ""),  # rejected: a committed record without clips
]
KEY_ID, SECRET = "AKIAlandscapeTEST", "s3cr3t-never-written-7f9c2e"
CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]


class S3:
    """The moto server: its endpoint, the environment that reaches it, a filesystem on it."""

    def __init__(self, endpoint: str, cache: Path) -> None:
        self.endpoint = endpoint
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.pop(CRASH_ENV, None)
        self.env |= {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "XDG_CACHE_HOME": str(cache),
        }
        self.options = {"key": KEY_ID, "secret": SECRET, "endpoint_url": endpoint}
        self.fs = s3fs.S3FileSystem(**self.options)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under `prefix` (bucket/path), by name relative to it."""
        self.fs.invalidate_cache()
        return {p[len(prefix) + 1 :]: self.fs.cat_file(p) for p in self.fs.find(prefix)}

    def build(
        self, url: str, source_list: Path, *extra: str, crash_at: str = ""
    ) -> tuple[int, str]:
        env = self.env | ({CRASH_ENV: crash_at} if crash_at else {})
        cmd = [*CLI, "build", "--source-list", str(source_list), "--out", url, *OPTIONS, *extra]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        return proc.returncode, proc.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(f"http://{host}:{port}", tmp_path_factory.mktemp("cache"))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("objstore") / "sources.csv"
    lines = ["source_id,url,class,start,end,split,license,attribution"]
    lines += [f"{i},{media_server}{f},{c},,,{s},CC0-1.0,test media" for i, f, c, s in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a corpus folder but the work folder."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".work" not in p.relative_to(out).parts
    }


def corpus_objects(s3: S3, prefix: str) -> dict[str, bytes]:
    return {k: v for k, v in s3.objects(prefix).items() if not k.startswith(".work/")}


@pytest.fixture(scope="module")
def reference(s3: S3, source_list: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus of the same build in a local folder."""
    out = tmp_path_factory.mktemp("local") / "landscape-av"
    code, err = s3.build(str(out), source_list)
    assert code == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def bucket_corpus(s3: S3, source_list: Path, reference: Path) -> str:
    """The same build to s3://corpus/landscape-av."""
    s3.fs.mkdir("corpus")
    code, err = s3.build("s3://corpus/landscape-av", source_list)
    assert code == 0, err[-3000:]
    return "s3://corpus/landscape-av"


def test_the_bucket_holds_the_bytes_of_a_local_build(
    s3: S3, bucket_corpus: str, reference: Path
) -> None:
    objects = s3.objects("corpus/landscape-av")
    corpus = {k: v for k, v in objects.items() if not k.startswith(".work/")}
    assert corpus == snapshot(reference)
    assert JOURNAL not in objects and not any(k.startswith(PUBLISH_DIR) for k in objects)
    records = sorted(k for k in objects if k.endswith("/source.json"))
    assert records == [f".work/samples/{i}/source.json" for i in ("good", "good2", "lowres")]


def test_no_credential_is_written(s3: S3, bucket_corpus: str, tmp_path: Path) -> None:
    written = list(s3.objects("corpus").values())
    mirror = Path(s3.env["XDG_CACHE_HOME"]) / "landscape-av"
    written += [p.read_bytes() for p in mirror.rglob("*") if p.is_file()]
    assert len(written) > 20
    for secret in (SECRET, KEY_ID, s3.endpoint):
        assert not any(secret.encode() in data for data in written), secret


def test_another_build_or_foreign_objects_are_refused(
    s3: S3, bucket_corpus: str, source_list: Path
) -> None:
    before = s3.objects("corpus/landscape-av")
    code, err = s3.build(bucket_corpus, source_list, "--max-clips", "1")
    assert code == EXIT_REFUSED and "holds the corpus of another build" in err
    assert s3.objects("corpus/landscape-av") == before
    s3.fs.pipe_file("corpus/other/notes.txt", b"mine")
    code, err = s3.build("s3://corpus/other", source_list)
    assert code == EXIT_REFUSED and "no part of a corpus (notes.txt)" in err
    assert s3.objects("corpus/other") == {"notes.txt": b"mine"}


def test_a_url_that_cannot_be_written_stops_the_build_with_exit_6(
    s3: S3, source_list: Path
) -> None:
    code, err = s3.build("s3://no-such-bucket/x", source_list)
    assert code == EXIT_OUTPUT, err
    assert "cannot write to s3://no-such-bucket/x" in err and "Traceback" not in err


@pytest.mark.slow
def test_killed_builds_resume_from_the_bucket_on_a_fresh_machine(
    s3: S3, source_list: Path, reference: Path, tmp_path: Path
) -> None:
    s3.fs.mkdir("resume")
    url = "s3://resume/x"
    code, _ = s3.build(url, source_list, "--work-dir", str(tmp_path / "a"), crash_at="clip:1")
    assert code == -9
    objects = s3.objects("resume/x")
    assert len([k for k in objects if k.endswith("/source.json")]) == 1
    assert not corpus_objects(s3, "resume/x")  # no corpus yet
    half = {  # what a kill during an upload leaves: clip objects, no record
        f"resume/x/.work/samples/{i}/{i}_00.mp4": b"half an upload"
        for i, *_ in ROWS
        if f".work/samples/{i}/source.json" not in objects
    }
    s3.fs.pipe(half)
    # a second machine (a fresh work folder) goes on (--resume: from what reached the bucket),
    # and is killed while publishing
    b = ("--work-dir", str(tmp_path / "b"), "--resume")
    code, _ = s3.build(url, source_list, *b, crash_at="publish:2")
    assert code == -9 and JOURNAL in s3.objects("resume/x")
    # a third finishes the publish and has nothing else to do
    code, err = s3.build(url, source_list, "--work-dir", str(tmp_path / "c"))
    assert code == 0, err[-3000:]
    assert corpus_objects(s3, "resume/x") == snapshot(reference)
    objects = s3.objects("resume/x")
    assert JOURNAL not in objects and b"half an upload" not in objects.values()


def test_stats_verify_and_export_frames_read_the_bucket(
    s3: S3, bucket_corpus: str, reference: Path, tmp_path: Path
) -> None:
    local = json.loads(s3.cli("stats", str(reference), "--json", "--no-figures").stdout)
    proc = s3.cli("stats", bucket_corpus, "--json")
    assert proc.returncode == 0, proc.stderr
    remote = json.loads(proc.stdout)
    assert remote["folder"] == bucket_corpus and remote["figures"] == {}
    assert remote["totals"] == local["totals"] and remote["totals"]["clips"] == 3
    proc = s3.cli("verify", bucket_corpus)
    assert proc.returncode == 0 and "3 samples checked: OK" in proc.stderr, proc.stderr
    frames = {}
    for name, folder in (("local", str(reference)), ("bucket", bucket_corpus)):
        dest = tmp_path / f"{name}.zip"
        proc = s3.cli("export-frames", folder, "--out", str(dest), "--resolution", "64", "-q")
        assert proc.returncode == 0, proc.stderr
        with zipfile.ZipFile(dest) as z:
            frames[name] = {n: z.read(n) for n in z.namelist()}
    assert frames["bucket"] == frames["local"] and len(frames["bucket"]) == 2 * 4 + 1


def test_a_damaged_object_in_the_bucket_is_named_by_verify(
    s3: S3, bucket_corpus: str, tmp_path: Path
) -> None:
    s3.fs.copy("corpus/landscape-av", "corpus/damaged", recursive=True)
    shard = "corpus/damaged/data/train-000000.tar"
    data = bytearray(s3.fs.cat_file(shard))
    data[len(data) // 2] ^= 0xFF
    s3.fs.pipe_file(shard, bytes(data))
    proc = s3.cli("verify", "s3://corpus/damaged", "--no-decode")
    assert proc.returncode == 1 and "train-000000.tar" in proc.stderr


def test_load_dataset_reads_the_bucket(
    s3: S3, bucket_corpus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the local copy goes there
    from landscape_av.classes import CLASSES
    from landscape_av.corpus import Corpus
    from landscape_av.corpus.hub import load_corpus

    corpus = Corpus(bucket_corpus, storage_options=s3.options)
    clips = corpus.manifest("clips")
    ds = load_corpus(corpus, storage_options=s3.options, cache_dir=str(tmp_path / "hf"))
    assert list(ds) == ["train", "test"]
    assert ds["train"].features["json"]["label"].names == list(CLASSES)
    for split in ds:
        assert ds[split]["__key__"] == list(clips.loc[clips["split"] == split, "key"])
    row = ds["train"][0]
    assert isinstance(row["mp4"], bytes) and io.BytesIO(row["flac"]).read(4) == b"fLaC"
