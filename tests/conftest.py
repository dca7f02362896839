"""Fixtures shared by every test: where the real data lies, a quiet, small torch, devices, and
a file server on 127.0.0.1 (downloads are tested against it, never against the network).

Devices: a test marked ``gpu`` needs CUDA and is skipped, with the reason, where torch sees
no CUDA GPU; a test marked ``cpu`` is about CPU behaviour and runs as on a CPU-only machine
(``device="auto"`` resolves to the CPU even where a GPU is present). Every other test runs
on whatever device ``auto`` finds.
"""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Property-based tests: CI runs a fixed, seeded number of examples; `pytest
# --hypothesis-profile=long` searches far longer (and remembers what it found).
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=None, database=None,
    suppress_health_check=_SLOW_OK, print_blob=True,
)  # fmt: skip
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile("ci")


def _shared_data() -> Path | None:
    explicit = os.environ.get("STRIATE_TEST_DATA")
    path = Path(explicit) if explicit else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real datasets (MNIST, CIFAR-10 JPEGs, ...) beside the checkout."""
    path = _shared_data()
    if path is None:
        pytest.skip("the shared data folder is not available")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Decoded-data caches go to a per-session temp dir, never the user's home."""
    cache = tmp_path_factory.getbasetemp() / "striate-cache"
    monkeypatch.setenv("STRIATE_CACHE", str(cache))
    monkeypatch.delenv("STRIATE_DATA", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where CUDA is absent, saying why."""
    if torch.cuda.is_available():
        return
    why = (
        f"needs a CUDA GPU: this PyTorch ({torch.__version__}) sees none "
        "(torch.cuda.is_available() is False); run `make gpu-check` on a GPU machine"
    )
    skip = pytest.mark.skip(reason=why)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cpu_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked ``cpu`` see no accelerator, as on a laptop without a GPU."""
    if request.node.get_closest_marker("cpu") is None:
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the network: only loopback hosts resolve or connect (the download and
    weights tests serve their files from 127.0.0.1; the web tests serve pages there)."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise OSError(f"test tried to resolve {host!r}; tests must stay offline")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise OSError(f"test tried to connect to {address!r}; tests must stay offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


# -- a file server on 127.0.0.1 ---------------------------------------------------------------


class _FileHandler(BaseHTTPRequestHandler):
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
        if wanted and srv.honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
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
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


class FileServer(ThreadingHTTPServer):
    """Serves the files under ``root``, honouring ``Range`` (unless ``honour_range`` is off),
    recording each request as ``(path, range header)``; ``cut_after = n`` makes the next
    answer announce the whole file, send ``n`` bytes and hang up."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def file_server(tmp_path: Path):
    """A :class:`FileServer` on 127.0.0.1 serving the (empty) folder ``tmp_path/served``."""
    root = tmp_path / "served"
    root.mkdir()
    srv = FileServer(root)
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
