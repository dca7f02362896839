"""The IDX file format and the MNIST family (MNIST, Fashion-MNIST) built on it.

IDX: a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32 dimensions,
then the raw values, usually gzip-compressed. Every check failure (wrong magic, wrong
length, a truncated gzip stream) becomes a one-line :class:`StriateError` naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.data.download import RemoteFile, ensure_files
from striate.data.sources._split import LazyImages
from striate.errors import StriateError

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array, validating header and size."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise StriateError(f"IDX file {path} not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise StriateError(f"cannot read {path}: corrupt or truncated file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise StriateError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise StriateError(f"{path} is truncated: the IDX header is incomplete")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise StriateError(
            f"{path} is truncated or corrupt: {len(raw) - header} data bytes, "
            f"{expected} expected for shape {dims}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-style data set: four IDX gz files in ``<data_dir>/<folder>/``."""

    folder: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    checksums: dict[str, tuple[str | None, str | None]]  # filename -> (sha256, md5)

    def files(self, part: str) -> list[RemoteFile]:
        prefix = "train" if part == "train" else "t10k"
        names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
        return [
            RemoteFile(name, tuple(m + name for m in self.mirrors), *self.checksums[name])
            for name in names
        ]

    def all_files(self) -> list[RemoteFile]:
        return self.files("train") + self.files("test")

    def load(self, part: str, root: Path, download: bool) -> LazyImages:
        folder = root / self.folder
        images_file, labels_file = ensure_files(folder, self.files(part), download).values()
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise StriateError(f"{images_file} does not hold uint8 images (N, H, W)")
        if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise StriateError(
                f"{labels_file} does not hold one uint8 label per image of {images_file.name}"
            )
        if len(labels) and labels.max() >= len(self.classes):
            raise StriateError(f"{labels_file} holds labels outside 0..{len(self.classes) - 1}")
        pixels = torch.from_numpy(images.copy()).unsqueeze(1)
        return LazyImages.of(pixels, torch.from_numpy(labels.astype(np.int64)), list(self.classes))


MNIST = IdxDataset(
    folder="mnist",
    classes=tuple(str(d) for d in range(10)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    # sha256: computed from the byte-identical official files (whose md5s equal the
    # canonical, widely published values); see the README beside the shared MNIST files.
    checksums={
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    },
)

FASHION_MNIST = IdxDataset(
    folder="fashion-mnist",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # md5 only: the values published in the zalandoresearch/fashion-mnist README (the same
    # ones torchvision checks); no official sha256 is published.
    checksums={
        "train-images-idx3-ubyte.gz": (None, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": (None, "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte.gz": (None, "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": (None, "bb300cfdad3c16e7a12a480ee83cd310"),
    },
)
