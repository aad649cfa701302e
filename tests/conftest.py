"""Fixtures shared by all test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("LANDSCAPE_AV_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repo (fixtures, real media, notes); skips where it is absent."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"{path} is absent (it sits beside the repo in CI; a user's clone lacks it)")
    return path


@pytest.fixture(scope="session")
def shared_media(shared_dir: Path) -> Path:
    """`../shared/media`: real third-party audio and video (see its README and SOURCES.tsv)."""
    return shared_dir / "media"


DEMO_BUILD_ARGS: tuple[str, ...] = (
    "--demo",
    "--classes",
    "thunderstorm,raining",
    "--size",
    "320x180",
    "--min-size",
    "320x180",
    "--max-clips",
    "2",
    "--demo-port",
    "0",
    "--workers",
    "2",
    "--quiet",
)
"""Options of the `demo_corpus` build: the offline demo of two classes at a small size, at most 2
clips per source; per class, a train source (2 clips) and a test source (1 clip), and the faulty
sources made of those classes (low resolution, frozen, missing)."""


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder built by the real `landscape-av build --demo` (yt-dlp over 127.0.0.1,
    ffmpeg, webdataset shards, manifests, card) with `DEMO_BUILD_ARGS`: two classes, 320x180 clips,
    2 per source. Built once per test session; treat it as read-only."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo-corpus") / "landscape-av"
    cmd = [sys.executable, "-c", "from landscape_av.cli import main; main()", "build"]
    proc = subprocess.run(
        [*cmd, *DEMO_BUILD_ARGS, "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(f"demo build failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return out


FULL_DEMO_PORT = "8799"
"""Not the demo's default port, so that a user's own `build --demo` does not collide."""
FULL_DEMO_ARGS = ("--size", "128x72", "--min-size", "128x72", "--max-clips", "1", "--workers", "2")


@pytest.fixture(scope="session")
def full_demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole demo (every class, every faulty source) built by `landscape-av build --demo` at
    128x72, one clip per source, on a fixed port into the relative folder `corpus`, so that the
    URLs and paths that the corpus records repeat from run to run. Treat it as read-only."""
    from click.testing import CliRunner

    from landscape_av.cli import main

    folder = tmp_path_factory.mktemp("full-demo")
    args = ["build", "--demo", "--demo-port", FULL_DEMO_PORT, *FULL_DEMO_ARGS, "--out", "corpus"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = CliRunner().invoke(main, [*args, "--quiet"], catch_exceptions=False)
    if result.exit_code != 0:
        pytest.fail(f"full demo build failed (exit {result.exit_code}):\n{result.output[-3000:]}")
    return folder / "corpus"


GUARD_CHILD = """
import json, resource, time
{setup}
import builtins, collections, numpy, numpy.dtypes, torch, torch._utils
torch.set_num_threads(1)
WATCHED = (builtins, collections, numpy, numpy.dtypes, torch, torch._utils, torch.Tensor,
           torch.nn.Parameter)
def fingerprint():
    return {{f"{{getattr(m, '__name__', m)}}.{{k}}": id(v) for m in WATCHED for k, v in vars(m).items()}}
def status(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) * 1024
limit = status("VmSize") + {limit}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
before, results = fingerprint(), []
for arg in {args!r}:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM (peak RSS) := VmRSS
    base, start, error, value = status("VmRSS"), time.process_time(), None, None
    try:
        value = repr({call})
    except Exception as e:
        error = f"{{type(e).__name__}}: {{e}}"
    seconds = time.process_time() - start  # CPU time: bounds that hold on a loaded machine
    grew = max(0, status("VmHWM") - base)
    results.append(dict(arg=arg, error=error, value=value, seconds=seconds, grew=grew))
after = fingerprint()
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(json.dumps(dict(results=results, changed=changed)))
"""


@pytest.fixture
def guarded():
    """`run(setup, call, args)`: evaluate the expression `call` once per `arg` of `args` (after the
    `setup` imports) in a child Python whose address space is capped `limit` bytes (500 MB) above
    what the imports took. Returns (results, changed, stderr): per arg a dict with `error` (the
    exception, 'Type: message', or None), `value` (repr of the result), `seconds` (CPU), `grew` (peak RSS
    during the call above the RSS before it, bytes); `changed`, the names in builtins, collections,
    numpy, numpy.dtypes, torch, torch._utils, torch.Tensor and Parameter bound to another object
    afterwards. A child still running after `timeout` s fails the test."""
    import json
    import subprocess
    import sys

    def run(
        setup: str, call: str, args: list, timeout: float = 120.0, limit: int = 500 << 20
    ) -> tuple[list[dict], list[str], str]:
        code = GUARD_CHILD.format(setup=setup, call=call, args=list(args), limit=limit)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the child still ran after {timeout:g} s: {call} over {args}")
        if proc.returncode != 0 or not proc.stdout.strip():
            pytest.fail(f"the child died (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        return out["results"], out["changed"], proc.stderr

    return run


# ----------------------------------------------------------------------------------------------
# Hostile shards, made by the tests (issue 22): each breaks one bound of the shard reader


def _tar_header(name: str, size: int, kind: bytes = b"0") -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, kind, 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _padded(size: int) -> int:
    return -(-size // 512) * 512


def _sparse_tar(path: Path, kind: bytes, size: int) -> Path:
    """A plain tar: an extension header of type `kind` claiming `size` bytes (a hole in the file:
    zeros that take no disk), then one member and the end."""
    with open(path, "wb") as f:
        f.write(_tar_header("././@LongLink", size, kind))
        f.seek(_padded(size), 1)
        f.write(_tar_header("k_00.json", 2) + b"{}".ljust(512, b"\0") + bytes(1024))
    return path


def _gz_tar(path: Path, parts) -> Path:
    """A .tar.gz of the tar bytes that the iterable `parts` yields, compressed as they come
    (nothing of the tar's size is held), closed by the end-of-archive blocks."""
    import zlib

    comp = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
    with open(path, "wb") as f:
        for part in parts:
            f.write(comp.compress(part))
        f.write(comp.compress(bytes(1024)) + comp.flush())
    return path


def _numbered(template: bytes, count: int, batch: int = 10_000):
    """`count` copies of the header `template` (name `k000000...`), the digits counting up, each
    with its checksum; in batches of `batch` headers."""
    at = template.index(b"000000")
    base = sum(template[:148]) + 8 * 32 + sum(template[156:])  # (digits all "0")
    for first in range(0, count, batch):
        out = []
        for i in range(first, min(first + batch, count)):
            digits = b"%06d" % i
            check = base + sum(digits) - 6 * 48
            out += [
                template[:at],
                digits,
                template[at + 6 : 148],
                b"%06o\0 " % check,
                template[156:],
            ]
        yield b"".join(out)


def _big_members(names: list[str], size: int):
    for name in names:
        yield _tar_header(name, size)
        for _ in range(size >> 20):
            yield bytes(1 << 20)


HOSTILE_SHARDS = {
    # name -> (make(path), file suffix, what the refusal says)
    "a GNU long name of 600 MB": (lambda p: _sparse_tar(p, b"L", 600_000_000), ".tar", "a long name of 600,000,000 bytes"),
    "a PAX header of 600 MB": (lambda p: _sparse_tar(p, b"x", 600_000_000), ".tar", "a PAX header of 600,000,000 bytes"),
    "300,000 empty members": (lambda p: _gz_tar(p, _numbered(_tar_header("k000000.json", 0), 300_000)), ".tar.gz", "more than 1,024 entries without data"),
    "300,000 refused members": (lambda p: _gz_tar(p, [(_tar_header("../x.json", 1) + b"x".ljust(512, b"\0")) * 10_000] * 30), ".tar.gz", "more than 100 members refused"),
    "a sample of three 100 MiB members": (lambda p: _gz_tar(p, _big_members([f"k_00.m{i}" for i in range(3)], 100 << 20)), ".tar.gz", "expands past"),
}  # fmt: skip
"""What a shard reader must refuse quickly, in bounded memory (tarfile, which the readers used
before, read the first two whole and kept a header per member of the next two)."""


@pytest.fixture(scope="session")
def hostile_shards(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[str, str]]:
    """The `HOSTILE_SHARDS`, made once a session as `train-00000N.tar[.gz]` in one folder:
    {path: (name, what the refusal says)}. Read-only."""
    folder = tmp_path_factory.mktemp("hostile-shards")
    return {
        build(folder / f"train-{i:06d}{suffix}"): (name, message)
        for i, (name, (build, suffix, message)) in enumerate(HOSTILE_SHARDS.items())
    }
