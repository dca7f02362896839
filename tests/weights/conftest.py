"""A loopback HTTP server: the weights tests never reach a model hub (the offline guard is in
tests/conftest.py)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# -- a file server on 127.0.0.1 ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        file = srv.root / self.path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted:
            start, status = int(wanted.removeprefix("bytes=").split("-")[0]), 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if srv.cut_after is not None:  # announce everything, send part, hang up
            body, srv.cut_after = body[: srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    srv = FileServer(root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
