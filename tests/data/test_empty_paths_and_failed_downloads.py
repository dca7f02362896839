"""A ``kind:`` data spec without its path is refused (it never means the current folder),
and a download that fails leaves no empty folder behind in the data directory."""

from __future__ import annotations

import pytest

from striate.data import download as dl
from striate.data.download import RemoteFile, download, ensure_files
from striate.data.sources.folder import FolderIndex, estimate_folder_bytes
from striate.data.sources.images import load_image_data
from striate.data.sources.video import load_video_data
from striate.errors import StriateError


def test_an_empty_folder_spec_is_refused_not_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a cwd that would pass as an image folder
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
    with pytest.raises(StriateError, match=r"^folder: needs a path, as in folder:photos$"):
        FolderIndex.scan("folder:")
    with pytest.raises(StriateError, match="folder: needs a path"):
        estimate_folder_bytes("")
    with pytest.raises(StriateError, match="folder: needs a path"):
        load_image_data("folder:", "train")
    with pytest.raises(StriateError, match=r"^folder: needs a path, as in folder:clips$"):
        load_video_data("folder:", "train")


def _unreachable(*args, **kwargs):
    raise OSError("[Errno -2] Name or service not known")


def test_a_failed_download_removes_the_folders_it_created(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_fetch", _unreachable)
    root = tmp_path / "data"
    with pytest.raises(StriateError, match=r"could not download a\.gz"):
        download(["http://example.invalid/a.gz"], root / "sentiment" / "imdb" / "a.gz")
    assert not root.exists()
    files = [RemoteFile("b.gz", ("http://example.invalid/b.gz",), sha256="0" * 64)]
    root.mkdir()
    with pytest.raises(StriateError, match=r"could not download b\.gz"):
        ensure_files(root / "fashion-mnist", files, download=True, progress=False)
    assert list(root.iterdir()) == []  # the data folder that was there stays, empty


def test_a_partial_download_keeps_its_folder_for_the_resume(tmp_path, monkeypatch):
    def half(url, part, progress, timeout, resume):
        part.write_bytes(b"half")
        raise OSError("connection reset")

    monkeypatch.setattr(dl, "_fetch", half)
    dest = tmp_path / "data" / "mnist" / "c.gz"
    with pytest.raises(StriateError, match="connection reset"):
        download(["http://example.invalid/c.gz"], dest)
    assert (dest.parent / "c.gz.part").read_bytes() == b"half"
