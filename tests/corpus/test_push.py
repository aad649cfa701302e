"""`landscape-av push` against a stand-in Hub on 127.0.0.1: the real huggingface_hub client speaks
real HTTP to a small server that answers like the Hub and keeps what it receives."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape_av.cli import main
from landscape_av.corpus.hub import upload_files
from landscape_av.schema import CARD_FILE, WORK_DIR


class _Hub(BaseHTTPRequestHandler):
    """Answers create-repo, validate-yaml, preupload (everything 'regular') and commit; records."""

    requests: list[tuple[str, bytes]]

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, payload: dict, code: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append((self.path, body))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/api/repos/create":
            self._reply({"url": f"{base}/datasets/someone/landscape-av"})
        elif self.path == "/api/validate-yaml":
            self._reply({"errors": [], "warnings": []})
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            self._reply(
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                }
            )
        elif "/commit/" in self.path:
            url = f"{base}/datasets/someone/landscape-av/commit/{'a' * 40}"
            self._reply({"commitUrl": url, "commitOid": "a" * 40})
        else:
            self._reply({"error": "not here"}, 404)


@pytest.fixture
def hub() -> Iterator[tuple[str, list]]:
    requests: list[tuple[str, bytes]] = []
    handler = type("Hub", (_Hub,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_push_uploads_the_corpus_but_not_its_work_state(
    corpus_copy: Path, hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, requests = hub
    (corpus_copy / WORK_DIR).mkdir()
    (corpus_copy / WORK_DIR / "state.json").write_text("{}")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    args = ["push", str(corpus_copy), "--repo", "someone/landscape-av", "--endpoint", endpoint]
    result = CliRunner().invoke(main, [*args, "--private"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("/commit/" + "a" * 40)

    paths = [p for p, _ in requests]
    assert paths[0] == "/api/repos/create"
    created = json.loads(requests[0][1])
    assert (created["type"], created["name"], created["visibility"]) == (
        "dataset",
        "landscape-av",
        "private",
    )
    yaml = json.loads(dict(requests)["/api/validate-yaml"])
    assert yaml["repoType"] == "dataset"
    assert yaml["content"] == (corpus_copy / CARD_FILE).read_text()
    commit = next(body for path, body in requests if "/commit/" in path)
    sent = {}
    for line in commit.decode().splitlines():
        op = json.loads(line)
        if op["key"] == "file":
            sent[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
    expected = upload_files(corpus_copy)
    assert sorted(sent) == expected
    assert not any(p.startswith(WORK_DIR) for p in sent)
    assert {"README.md", "build.json"} <= set(sent)
    for name in expected:
        assert sent[name] == (corpus_copy / name).read_bytes(), name


def test_push_refuses_a_damaged_corpus_before_any_request(corpus_copy: Path, hub) -> None:
    endpoint, requests = hub
    shard = next((corpus_copy / "data").glob("train-*.tar"))
    shard.write_bytes(shard.read_bytes()[:-1024])
    args = ["push", str(corpus_copy), "--repo", "someone/x", "--endpoint", endpoint]
    result = CliRunner().invoke(main, [*args, "--token", "hf_x"])
    assert result.exit_code == 1
    assert "not ready to publish" in result.output and shard.name in result.output
    assert requests == []


def test_dry_run_lists_what_would_be_sent(demo_corpus: Path) -> None:
    result = CliRunner().invoke(main, ["push", str(demo_corpus), "--repo", "a/b", "--dry-run"])
    assert result.exit_code == 0, result.output
    listed = result.output.split()
    assert listed == upload_files(demo_corpus)
    assert "README.md" in listed and any(p.startswith("data/") for p in listed)
