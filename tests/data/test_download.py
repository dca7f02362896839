"""striate.data.download against a real HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import socket

import pytest

from striate.data import download as dl
from striate.data.download import RemoteFile, download, ensure_files
from striate.errors import StriateError

PAYLOAD = bytes(range(256)) * 997 + b"tail"  # ~250 KB, several read chunks would not matter
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def server(file_server):
    """The loopback file server (tests/conftest.py) serving ``data.bin``."""
    (file_server.root / "data.bin").write_bytes(PAYLOAD)
    return file_server


def _dead_url() -> str:
    """An address on loopback where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.bin"


def test_full_download_verifies_and_leaves_no_partial(server, tmp_path):
    dest = tmp_path / "out" / "data.bin"
    assert download([server.url("data.bin")], dest, sha256=SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_suffix(".bin.part").exists()
    assert server.requests == [("/data.bin", None)]


def test_md5_is_accepted_when_no_sha256_is_published(server, tmp_path):
    dest = tmp_path / "data.bin"
    download([server.url("data.bin")], dest, md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    dest = tmp_path / "data.bin"
    half = len(PAYLOAD) // 2
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:half])
    download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert server.requests == [("/data.bin", f"bytes={half}-")]
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_suffix(".bin.part").exists()


def test_interrupted_download_keeps_the_partial_and_resumes_later(server, tmp_path):
    dest = tmp_path / "data.bin"
    server.cut_after = 100_000
    with pytest.raises(StriateError, match=r"could not download data\.bin"):
        download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert not dest.exists()
    assert dest.with_suffix(".bin.part").stat().st_size == 100_000
    download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert server.requests[-1] == ("/data.bin", "bytes=100000-")
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    server.honour_range = False
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:1000])
    download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert server.requests == [("/data.bin", "bytes=1000-")]  # asked, got a full 200
    assert dest.read_bytes() == PAYLOAD


def test_stale_partial_of_another_file_is_discarded_and_refetched(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(b"x" * 5000)  # wrong prefix
    download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert server.requests == [("/data.bin", "bytes=5000-"), ("/data.bin", None)]
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_raises_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(StriateError, match=r"data\.bin failed its checksum"):
        download([server.url("data.bin")], dest, sha256="0" * 64, progress=False)
    assert not dest.exists()
    assert not dest.with_suffix(".bin.part").exists()


def test_dead_mirror_then_missing_file_then_working_mirror(server, tmp_path):
    dest = tmp_path / "data.bin"
    urls = [_dead_url(), server.url("nothing-here.bin"), server.url("data.bin")]
    download(urls, dest, sha256=SHA, progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/nothing-here.bin", "/data.bin"]


def test_all_mirrors_failing_names_the_file_and_the_reasons(server, tmp_path):
    with pytest.raises(StriateError, match=r"could not download data\.bin: .*404"):
        download([server.url("missing")], tmp_path / "data.bin", sha256=SHA, progress=False)


def test_present_verified_file_makes_no_request(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    assert download([server.url("data.bin")], dest, sha256=SHA, progress=False) == dest
    assert server.requests == []


def test_progress_bar_goes_to_stderr(server, tmp_path, capsys):
    download([server.url("data.bin")], tmp_path / "data.bin", sha256=SHA, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "data.bin" in captured.err


# -- ensure_files ---------------------------------------------------------------------------


def _remote(server) -> RemoteFile:
    return RemoteFile("data.bin", (server.url("data.bin"),), sha256=SHA)


def test_ensure_files_missing_without_download_says_what_to_do(server, tmp_path):
    with pytest.raises(StriateError, match=r"data\.bin not found in .*download enabled"):
        ensure_files(tmp_path / "nowhere", [_remote(server)], download=False)
    assert server.requests == []


def test_ensure_files_downloads_then_trusts_its_stamp(server, tmp_path, monkeypatch):
    folder = tmp_path / "set"
    found = ensure_files(folder, [_remote(server)], download=True, progress=False)
    assert found["data.bin"].read_bytes() == PAYLOAD
    assert list(folder.iterdir()) == [folder / "data.bin"]  # stamps live in the cache

    hashed = []
    real = dl.file_digest
    monkeypatch.setattr(dl, "file_digest", lambda p, a: hashed.append(p) or real(p, a))
    ensure_files(folder, [_remote(server)], download=False)
    assert hashed == []  # verified once, remembered by size + mtime
    assert len(server.requests) == 1


def test_ensure_files_rehashes_a_changed_file_and_rejects_it(server, tmp_path):
    folder = tmp_path / "set"
    ensure_files(folder, [_remote(server)], download=True, progress=False)
    (folder / "data.bin").write_bytes(PAYLOAD[:-1] + b"X")
    with pytest.raises(StriateError, match=r"data\.bin is corrupt or incomplete"):
        ensure_files(folder, [_remote(server)], download=False)
    ensure_files(folder, [_remote(server)], download=True, progress=False)  # repaired
    assert (folder / "data.bin").read_bytes() == PAYLOAD


def test_complete_partial_answered_416_is_verified_and_kept(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD)
    download([server.url("data.bin")], dest, sha256=SHA, progress=False)
    assert server.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]
    assert dest.read_bytes() == PAYLOAD
