"""`build --out s3://...` against a real S3-compatible server (moto, on 127.0.0.1): the bucket gets the
very bytes of a local build, with the local engine or on a Ray cluster (`--engine ray`), a killed
build resumes from what reached the bucket (on another machine too: a fresh work folder), no
credential is written anywhere, and stats, verify, export-frames and `load_dataset` read the
corpus in the bucket (the server and the cluster: `s3` and `ray_cluster` of conftest.py)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from landscape_av.pipeline.exits import EXIT_OUTPUT, EXIT_REFUSED
from landscape_av.storage import JOURNAL, PUBLISH_DIR

from .conftest import KEY_ID, LOOPBACK_ENV, S3, SECRET, Cluster, snapshot, write_media_list

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

OPTIONS = ["--size", "320x180", "--min-size", "320x180", "--max-clips", "2", "--retries", "0"]
OPTIONS += ["--workers", "2", "--quiet"]
ROWS = [
    ("good", "good.mp4", "raining", "train"),  # 2 clips
    ("good2", "good2.mp4", "fire crackling", "test"),  # 1 clip
    ("lowres", "lowres.mp4", "wind noise", ""),  # rejected: a committed record without clips
]


@pytest.fixture(scope="module")
def source_list(media_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("objstore") / "sources.csv"
    return write_media_list(path, [(i, f"{media_server}{f}", c, s) for i, f, c, s in ROWS])


def corpus_objects(s3: S3, prefix: str) -> dict[str, bytes]:
    return {k: v for k, v in s3.objects(prefix).items() if not k.startswith(".work/")}


@pytest.fixture(scope="module")
def reference(s3: S3, source_list: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus of the same build in a local folder."""
    out = tmp_path_factory.mktemp("local") / "landscape-av"
    code, err = s3.build(str(out), source_list, *OPTIONS)
    assert code == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def bucket_corpus(s3: S3, source_list: Path, reference: Path) -> str:
    """The same build to s3://corpus/landscape-av."""
    s3.fs.mkdir("corpus")
    code, err = s3.build("s3://corpus/landscape-av", source_list, *OPTIONS)
    assert code == 0, err[-3000:]
    return "s3://corpus/landscape-av"


@pytest.mark.slow
def test_the_bucket_holds_the_bytes_of_a_local_build(
    s3: S3, bucket_corpus: str, reference: Path
) -> None:
    objects = s3.objects("corpus/landscape-av")
    corpus = {k: v for k, v in objects.items() if not k.startswith(".work/")}
    assert corpus == snapshot(reference)
    assert JOURNAL not in objects and not any(k.startswith(PUBLISH_DIR) for k in objects)
    records = sorted(k for k in objects if k.endswith("/source.json"))
    assert records == [f".work/samples/{i}/source.json" for i in ("good", "good2", "lowres")]


@pytest.mark.slow
def test_no_credential_is_written(s3: S3, bucket_corpus: str, tmp_path: Path) -> None:
    written = list(s3.objects("corpus").values())
    mirror = Path(s3.env["XDG_CACHE_HOME"]) / "landscape-av"
    written += [p.read_bytes() for p in mirror.rglob("*") if p.is_file()]
    assert len(written) > 20
    for secret in (SECRET, KEY_ID, s3.endpoint):
        assert not any(secret.encode() in data for data in written), secret


@pytest.mark.slow
def test_another_build_or_foreign_objects_are_refused(
    s3: S3, bucket_corpus: str, source_list: Path
) -> None:
    before = s3.objects("corpus/landscape-av")
    code, err = s3.build(bucket_corpus, source_list, *OPTIONS, "--max-clips", "1")
    assert code == EXIT_REFUSED and "holds the corpus of another build" in err
    assert s3.objects("corpus/landscape-av") == before
    s3.fs.pipe_file("corpus/other/notes.txt", b"mine")
    code, err = s3.build("s3://corpus/other", source_list, *OPTIONS)
    assert code == EXIT_REFUSED and "no part of a corpus (notes.txt)" in err
    assert s3.objects("corpus/other") == {"notes.txt": b"mine"}


def test_a_url_that_cannot_be_written_stops_the_build_with_exit_6(
    s3: S3, source_list: Path
) -> None:
    code, err = s3.build("s3://no-such-bucket/x", source_list, *OPTIONS)
    assert code == EXIT_OUTPUT, err
    assert "cannot write to s3://no-such-bucket/x" in err and "Traceback" not in err


@pytest.mark.slow
def test_killed_builds_resume_from_the_bucket_on_a_fresh_machine(
    s3: S3, source_list: Path, reference: Path, tmp_path: Path
) -> None:
    s3.fs.mkdir("resume")
    url = "s3://resume/x"
    code, _ = s3.build(
        url, source_list, *OPTIONS, "--work-dir", str(tmp_path / "a"), crash_at="clip:1"
    )
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
    code, _ = s3.build(url, source_list, *OPTIONS, *b, crash_at="publish:2")
    assert code == -9 and JOURNAL in s3.objects("resume/x")
    # a third finishes the publish and has nothing else to do
    code, err = s3.build(url, source_list, *OPTIONS, "--work-dir", str(tmp_path / "c"))
    assert code == 0, err[-3000:]
    assert corpus_objects(s3, "resume/x") == snapshot(reference)
    objects = s3.objects("resume/x")
    assert JOURNAL not in objects and b"half an upload" not in objects.values()


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_ray_build_to_the_bucket_holds_the_bytes_of_a_local_build(
    s3: S3, ray_cluster: Cluster, source_list: Path, reference: Path, tmp_path: Path
) -> None:
    """`--engine ray` and `--out s3://...` together: each source committed on the driver is
    uploaded as it comes, and the published corpus is that of a local folder build."""
    s3.fs.mkdir("ray")
    mirror = tmp_path / "mirror"
    ray = ("--engine", "ray", "--ray-address", ray_cluster.address, "--work-dir", str(mirror))
    code, err = s3.build("s3://ray/landscape-av", source_list, *OPTIONS, *ray, env=LOOPBACK_ENV)
    assert code == 0, err[-3000:]
    assert "ray: 3 of 3 sources ran as tasks" in (mirror / ".work" / "build.log").read_text()
    objects = s3.objects("ray/landscape-av")
    assert corpus_objects(s3, "ray/landscape-av") == snapshot(reference)
    # each committed source was uploaded: the bucket's samples are the mirror's
    committed = {f".work/samples/{k}": v for k, v in snapshot(mirror / ".work/samples").items()}
    uploaded = {k: v for k, v in objects.items() if k.startswith(".work/samples/")}
    assert sorted(uploaded) == sorted(committed) and uploaded == committed
    assert JOURNAL not in objects and not any(k.startswith(PUBLISH_DIR) for k in objects)
