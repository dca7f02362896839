"""Image sources: real MNIST / CIFAR-10 (shared data), digits, image folders, bad inputs."""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from striate.data.paths import cache_dir, resolve_data_dir
from striate.data.sources import cifar
from striate.data.sources.folder import FolderIndex
from striate.data.sources.idx import read_idx
from striate.data.sources.images import (
    ImageFolderStream,
    describe_sources,
    estimate_folder_bytes,
    image_sources,
    load_image_data,
    read_image_file,
)
from striate.errors import StriateError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# -- paths ----------------------------------------------------------------------------------


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("STRIATE_DATA", raising=False)
    assert resolve_data_dir() == tmp_path / "xdg" / "striate" / "data"
    monkeypatch.setenv("STRIATE_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "c"))
    assert cache_dir("decoded") == tmp_path / "c" / "decoded"
    assert (tmp_path / "c" / "decoded").is_dir()


# -- MNIST (real files) ---------------------------------------------------------------------


def test_mnist_splits_counts_and_labels(shared_data):
    train = load_image_data("mnist", "train", data_dir=shared_data, download=False)
    val = load_image_data("mnist", "val", data_dir=shared_data, download=False)
    test = load_image_data("mnist", "test", data_dir=shared_data, download=False)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.images.shape[1:] == (1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert len(train) + len(val) == 60000
    assert abs(len(val) - 6000) <= 10
    combined = torch.bincount(train.labels, minlength=10) + torch.bincount(val.labels)
    assert combined.tolist() == MNIST_TRAIN_COUNTS  # val is stratified, disjoint from train
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    assert test.labels.min() == 0 and test.labels.max() == 9
    assert test.images.max() == 255 and test.classes == [str(d) for d in range(10)]


def test_mnist_val_is_seeded_and_limit_and_resize_apply(shared_data):
    a = load_image_data("mnist", "val", data_dir=shared_data, download=False, seed=3, limit=50)
    b = load_image_data("mnist", "val", data_dir=shared_data, download=False, seed=3, limit=50)
    c = load_image_data("mnist", "val", data_dir=shared_data, download=False, seed=4, limit=50)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    small = load_image_data(
        "mnist", "test", data_dir=shared_data, download=False, limit=20, image_size=32
    )
    assert small.images.shape == (20, 1, 32, 32)
    with pytest.raises(StriateError, match="val_fraction is 0"):
        load_image_data("mnist", "val", data_dir=shared_data, download=False, val_fraction=0)


def test_truncated_idx_gz_is_reported_by_name(shared_data, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in (shared_data / "mnist").glob("*.gz"):
        shutil.copy(f, folder / f.name)
    cut = folder / "t10k-labels-idx1-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:2000])
    with pytest.raises(StriateError, match=r"t10k-labels-idx1-ubyte\.gz") as err:
        read_idx(cut)
    assert "truncated" in str(err.value)
    with pytest.raises(StriateError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt"):
        load_image_data("mnist", "test", data_dir=tmp_path, download=False)
    train = load_image_data("mnist", "train", data_dir=tmp_path, download=False, limit=10)
    assert train.images.shape == (10, 1, 28, 28)  # the intact train files still load


def test_idx_header_and_length_checks(tmp_path):
    bad_magic = tmp_path / "bad.idx"
    bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
    with pytest.raises(StriateError, match=r"bad\.idx is not an IDX file"):
        read_idx(bad_magic)
    short = tmp_path / "short-idx1-ubyte.gz"
    short.write_bytes(gzip.compress(struct.pack(">4BI", 0, 0, 8, 1, 10) + bytes(7)))
    with pytest.raises(StriateError, match=r"short-idx1-ubyte\.gz is truncated.*7 data bytes"):
        read_idx(short)
    good = tmp_path / "good"
    good.write_bytes(struct.pack(">4BII", 0, 0, 8, 2, 2, 3) + bytes(range(6)))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_missing_files_without_download(tmp_path):
    with pytest.raises(StriateError, match=r"not found in .*fashion-mnist.*download enabled"):
        load_image_data("fashion-mnist", "test", data_dir=tmp_path, download=False)
    with pytest.raises(StriateError, match=r"cifar-10-binary\.tar\.gz not found in"):
        load_image_data("cifar10", "test", data_dir=tmp_path, download=False)


# -- CIFAR-10 -------------------------------------------------------------------------------


def test_cifar10_jpeg_real_data_with_limit(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    test = load_image_data("cifar10", "test", data_dir=shared_data, download=False, limit=64)
    assert test.images.shape == (64, 3, 32, 32) and test.images.dtype == torch.uint8
    assert test.classes[:3] == ["airplane", "automobile", "bird"]
    assert len(test.labels.unique()) > 5
    train = load_image_data("cifar10", "train", data_dir=shared_data, download=False, limit=32)
    assert train.images.shape == (32, 3, 32, 32)
    assert not any(cache_dir("decoded").glob("cifar10jpeg-*"))  # small subsets: no cache


def _jpeg_bytes(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _mini_cifar_jpeg(root: Path, per_class: int = 3) -> Path:
    folder = root / "cifar10-jpeg"
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        for c, name in enumerate(cifar.CLASSES):
            (folder / "test" / name).mkdir(parents=True)
            for i in range(per_class):
                (folder / "test" / name / f"{i:04d}.jpg").write_bytes(_jpeg_bytes(c * 100 + i))
                data = _jpeg_bytes(5000 + c * 100 + i, size=40 if i == 0 else 32)
                info = tarfile.TarInfo(f"train/{name}/{i:04d}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / "train.tar").write_bytes(tar_buf.getvalue())
    return root


def test_cifar10_jpeg_layout_decodes_once_then_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    root = _mini_cifar_jpeg(tmp_path / "data")
    first = load_image_data("cifar10", "test", data_dir=root, download=False)
    assert first.images.shape == (30, 3, 32, 32)
    assert torch.bincount(first.labels).tolist() == [3] * 10
    assert len(list((tmp_path / "cache" / "decoded").glob("cifar10jpeg-test-*"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar, "_decode", no_decoding)
    again = load_image_data("cifar10", "test", data_dir=root, download=False)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    monkeypatch.undo()
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    train = load_image_data("cifar10", "train", data_dir=root, download=False, val_fraction=1 / 3)
    val = load_image_data("cifar10", "val", data_dir=root, download=False, val_fraction=1 / 3)
    assert (len(train), len(val)) == (20, 10)  # 40x40 member was resized to 32
    assert len(list((tmp_path / "cache" / "decoded").glob("cifar10jpeg-train-*"))) == 1


def _records(labels: list[int]) -> bytes:
    out = b""
    for i, y in enumerate(labels):
        out += bytes([y]) + bytes([i % 256]) * 1024 + bytes([100]) * 1024 + bytes([200]) * 1024
    return out


def test_cifar10_binary_records_from_archive_and_extracted_folder(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            data = _records([0, 9, 3] if name == "test_batch.bin" else [1, 2])
            info = tarfile.TarInfo(f"{cifar.BINARY_DIR}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    parts = cifar.read_binary(archive)
    assert parts["train"][0].shape == (10, 3, 32, 32) and parts["test"][1].tolist() == [0, 9, 3]
    assert parts["test"][0][1, :, 0, 0].tolist() == [1, 100, 200]  # R, G, B planes

    root = tmp_path / "data"
    with tarfile.open(archive) as tar:
        tar.extractall(root / "cifar10", filter="data")
    test = load_image_data("cifar10", "test", data_dir=root, download=False)
    assert test.labels.tolist() == [0, 9, 3] and test.classes[9] == "truck"
    batch = root / "cifar10" / cifar.BINARY_DIR / "test_batch.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    with pytest.raises(StriateError, match=r"test_batch\.bin is truncated"):
        cifar.read_binary(root / "cifar10" / cifar.BINARY_DIR)


# -- digits ---------------------------------------------------------------------------------


def test_digits_is_embedded_and_split_three_ways():
    parts = {s: load_image_data("digits", s) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 1797
    assert parts["test"].images.shape[1:] == (1, 8, 8)
    assert parts["train"].images.max() == 255 and parts["train"].labels.max() == 9
    assert load_image_data("digits", "test", image_size=16).image_size == 16
    assert torch.equal(load_image_data("digits", "test", seed=5).labels, parts["test"].labels)


# -- image folders --------------------------------------------------------------------------


def _save(path: Path, mode: str, size: tuple[int, int], fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    rgb = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    if mode == "P":
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (size[1], size[0]), dtype=np.uint16))
    else:
        img = rgb.convert(mode)
    img.save(path, fmt)


def _mixed_folder(root: Path) -> Path:
    specs = [
        ("cat/a.png", "RGB", (40, 30)),
        ("cat/b.jpg", "L", (32, 32)),
        ("cat/c.png", "RGBA", (32, 32)),
        ("cat/sub/d.bmp", "RGB", (32, 48)),
        ("dog/e.gif", "P", (32, 32)),
        ("dog/f.tiff", "CMYK", (32, 32)),
        ("dog/g.webp", "RGB", (50, 32)),
        ("dog/h.jpeg", "RGB", (32, 32)),
    ]
    for name, mode, size in specs:
        _save(root / name, mode, size)
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_folder_mixed_modes_and_sizes(tmp_path):
    root = _mixed_folder(tmp_path / "pets")
    splits = {s: load_image_data(f"folder:{root}", s, val_fraction=0.25) for s in ("train", "val")}
    test = load_image_data(f"folder:{root}", "test", val_fraction=0.25)
    assert sum(len(d) for d in splits.values()) + len(test) == 8
    for data in [*splits.values(), test]:
        assert data.images.shape[1:] == (3, 32, 32) and data.classes == ["cat", "dog"]
    again = load_image_data(f"folder:{root}", "train", val_fraction=0.25)
    assert torch.equal(again.images, splits["train"].images)  # deterministic
    big = load_image_data(f"folder:{root}", "train", image_size=20, val_fraction=0.25)
    assert big.images.shape[1:] == (3, 20, 20)


def test_folder_gray_only_and_explicit_splits_and_stream(tmp_path):
    root = tmp_path / "shapes"
    for split, count in (("train", 4), ("test", 2)):
        for cls in ("circle", "square"):
            for i in range(count):
                _save(root / split / cls / f"{i}.png", "L" if i % 2 else "I;16", (24, 24))
    train = load_image_data(f"folder:{root}", "train", val_fraction=0.25)
    val = load_image_data(f"folder:{root}", "val", val_fraction=0.25)
    test = load_image_data(f"folder:{root}", "test")
    assert train.images.shape == (6, 1, 24, 24) and (len(val), len(test)) == (2, 4)
    stream = ImageFolderStream(root, "test", image_size=16)
    image, label = stream[3]
    assert stream.classes == ["circle", "square"] and len(stream) == 4
    assert image.shape == (1, 16, 16) and image.dtype == torch.uint8 and label == 1
    assert estimate_folder_bytes(root) == 12 * 1 * 24 * 24
    assert estimate_folder_bytes(root, image_size=8, split="test") == 4 * 64
    (root / "val" / "circle").mkdir(parents=True)  # an empty val/ folder: val has no images
    with pytest.raises(StriateError, match="no images for split 'val'"):
        load_image_data(f"folder:{root}", "val")


def test_read_image_file_channels(tmp_path):
    _save(tmp_path / "rgba.png", "RGBA", (10, 12))
    _save(tmp_path / "gray16.png", "I;16", (9, 9))
    assert read_image_file(tmp_path / "rgba.png").shape == (3, 12, 10)
    assert read_image_file(tmp_path / "rgba.png", channels=1).shape == (1, 12, 10)
    gray = read_image_file(tmp_path / "gray16.png")
    assert gray.shape == (1, 9, 9) and gray.dtype == torch.uint8 and gray.max() > 128
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert read_image_file(tmp_path / "clear.png").unique().tolist() == [255]  # on white
    with pytest.raises(StriateError, match=r"nothing\.png not found"):
        read_image_file(tmp_path / "nothing.png")
    with pytest.raises(StriateError, match="is a directory"):
        read_image_file(tmp_path)


def test_corrupt_and_truncated_images_are_named(tmp_path):
    root = _mixed_folder(tmp_path / "pets")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(StriateError, match=r"broken\.png is not a readable image"):
        load_image_data(f"folder:{root}", "train")
    (root / "dog" / "broken.png").unlink()
    jpeg = (root / "dog" / "h.jpeg").read_bytes()
    (root / "dog" / "h.jpeg").write_bytes(jpeg[:-300])  # header intact, scan data cut
    with pytest.raises(StriateError, match=r"cannot decode image .*h\.jpeg.*truncated"):
        for split in ("train", "val", "test"):
            load_image_data(f"folder:{root}", split, val_fraction=0.25)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("empty", "no images found"),
        ("loose", "no class sub-folders"),
        ("single", r"only one class \(only\)"),
    ],
)
def test_bad_folders(tmp_path, layout, message):
    root = tmp_path / "imgs"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        (root / "a").mkdir(parents=True)
    elif layout == "loose":
        _save(root / "x.png", "RGB", (8, 8))
    elif layout == "single":
        _save(root / "only" / "x.png", "RGB", (8, 8))
    with pytest.raises(StriateError, match=message):
        load_image_data(f"folder:{root}", "train")
    if layout != "missing":
        with pytest.raises(StriateError, match=message):
            FolderIndex.scan(root)


# -- registry -------------------------------------------------------------------------------


def test_unknown_source_and_split_and_catalogue(tmp_path, shared_data):
    with pytest.raises(StriateError, match=r"unknown image source 'mnsit'.*folder:PATH"):
        load_image_data("mnsit")
    with pytest.raises(StriateError, match="unknown split 'dev'"):
        load_image_data("digits", "dev")
    assert {"mnist", "fashion-mnist", "cifar10", "digits", "folder:PATH"} <= set(image_sources())
    rows = {r["name"]: r for r in describe_sources(shared_data)}
    assert rows["mnist"]["present"] and rows["cifar10"]["present"] and rows["digits"]["present"]
    assert rows["fashion-mnist"]["present"] is False
    assert not describe_sources(tmp_path)[0]["present"]
