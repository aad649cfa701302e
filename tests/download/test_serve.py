"""The loopback static server."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from landscape_av.sources.serve import serve_folder


def test_serves_a_folder_on_loopback_and_reports_a_taken_port(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01" * 5000)
    with serve_folder(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url + "a.bin", timeout=10) as r:
            assert r.read() == b"\x00\x01" * 5000
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "missing.mp4", timeout=10)
        assert err.value.code == 404
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"), serve_folder(tmp_path, port):
            pass
    with serve_folder(tmp_path, port) as again:  # the port is free again once the block ends
        assert again == url
    with pytest.raises(NotADirectoryError):
        serve_folder(tmp_path / "a.bin").__enter__()
