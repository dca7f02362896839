"""Image sources by name, and the one function that loads any of them.

Sources: ``digits`` (scikit-learn's 1,797 8x8 handwritten digits, bundled, no download),
``mnist``, ``fashion-mnist``, ``cifar10`` (downloaded into the data directory, or found
there) and ``folder:PATH`` (your own images, one sub-folder per class).

Example:
    >>> data = load_image_data("digits", "test")
    >>> data.images.shape[1:], data.classes[:3]
    (torch.Size([1, 8, 8]), ['0', '1', '2'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.data.paths import resolve_data_dir
from striate.data.sources import cifar
from striate.data.sources._split import (
    LazyImages,
    check_val_fraction,
    compose,
    limit_index,
    stratified_split,
    train_val_index,
)
from striate.data.sources.base import SPLITS, ImageData
from striate.data.sources.folder import (
    ImageFolderStream,
    estimate_folder_bytes,
    load_folder,
    read_image_file,
)
from striate.data.sources.idx import FASHION_MNIST, MNIST
from striate.data.transforms.functional import MAX_RESIZE_BYTES, check_resize, to_square
from striate.errors import StriateError
from striate.registry import Registry

__all__ = [
    "ImageFolderStream",
    "describe_sources",
    "estimate_folder_bytes",
    "image_sources",
    "load_image_data",
    "read_image_file",
]

FOLDER_PREFIX = "folder:"
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 20240  # fixed: the digits test set never depends on the user's seed
RESIZE_CHUNK = 4096


@dataclass(frozen=True)
class ImageSource:
    """A named source: ``load(part, data_dir, download)`` gives its official train or test
    part; ``where`` and ``present`` describe where it looks and whether it is there."""

    name: str
    description: str
    load: Callable[[str, Path, bool], LazyImages]
    where: Callable[[Path], str]
    present: Callable[[Path], bool]

    def __call__(self, part: str, root: Path, download: bool) -> LazyImages:
        return self.load(part, root, download)


SOURCES: Registry[ImageSource] = Registry("image source")


def _register(source: ImageSource) -> None:
    SOURCES.register(source.name)(source)


def _load_digits(part: str, root: Path, download: bool) -> LazyImages:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network

    bunch = load_digits()
    pixels = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images = torch.from_numpy(pixels).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    test, train = stratified_split(labels, (DIGITS_TEST_FRACTION,), DIGITS_TEST_SEED)
    chosen = test if part == "test" else train
    return LazyImages.of(images[chosen], labels[chosen], [str(d) for d in range(10)])


def _idx_present(dataset) -> Callable[[Path], bool]:
    return lambda root: all(
        (root / dataset.folder / f.filename).is_file() for f in dataset.all_files()
    )


_register(
    ImageSource(
        "digits",
        "scikit-learn's 1,797 handwritten digits, 8x8 grayscale, 10 classes (bundled)",
        _load_digits,
        lambda root: "bundled with scikit-learn",
        lambda root: True,
    )
)
_register(
    ImageSource(
        "mnist",
        "MNIST handwritten digits, 28x28 grayscale, 60,000 train + 10,000 test, 10 classes",
        MNIST.load,
        lambda root: str(root / MNIST.folder),
        _idx_present(MNIST),
    )
)
_register(
    ImageSource(
        "fashion-mnist",
        "Zalando Fashion-MNIST clothing, 28x28 grayscale, 60,000 train + 10,000 test, 10 classes",
        FASHION_MNIST.load,
        lambda root: str(root / FASHION_MNIST.folder),
        _idx_present(FASHION_MNIST),
    )
)
_register(
    ImageSource(
        "cifar10",
        "CIFAR-10 objects, 32x32 RGB, 50,000 train + 10,000 test, 10 classes",
        cifar.load_cifar10,
        lambda root: f"{root / 'cifar10'} (official binary) or {root / 'cifar10-jpeg'} (JPEG)",
        lambda root: cifar.binary_present(root) or cifar.jpeg_present(root),
    )
)


def image_sources() -> list[str]:
    """Names of the built-in sources, plus the ``folder:PATH`` pattern."""
    return [*SOURCES.names(), f"{FOLDER_PREFIX}PATH"]


def describe_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per source: name, description, where it looks, whether it is present."""
    root = resolve_data_dir(data_dir)
    rows = [
        {
            "name": name,
            "description": SOURCES.get(name).description,
            "where": SOURCES.get(name).where(root),
            "present": SOURCES.get(name).present(root),
        }
        for name in SOURCES.names()
    ]
    rows.append(
        {
            "name": f"{FOLDER_PREFIX}PATH",
            "description": "your own images: one sub-folder per class (optionally inside "
            "train/, val/, test/); png, jpg, bmp, gif, webp, tiff",
            "where": "PATH",
            "present": None,
        }
    )
    return rows


def _get(source: str) -> ImageSource:
    if source not in SOURCES:
        known = ", ".join(SOURCES.names())
        raise StriateError(
            f"unknown image source {source!r}; known: {known}, or {FOLDER_PREFIX}PATH for a "
            "folder of your own images"
        )
    return SOURCES.get(source)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    check_resize(len(images), images.shape[1], size)  # the uint8 result
    chunk = max(1, min(RESIZE_CHUNK, MAX_RESIZE_BYTES // (images.shape[1] * size * size * 4)))
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        out[start : start + chunk] = to_square(images[start : start + chunk], size)
    return out


def load_image_data(
    source: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = True,
    limit: int | None = None,
) -> ImageData:
    """Load one split of an image source into memory.

    Args:
        source: a name from :func:`image_sources` or ``"folder:PATH"``.
        split: "train", "val" or "test". For the built-in sets val is a seeded, stratified
            ``val_fraction`` of the official training set and train is the rest.
        data_dir: root holding one folder per source (see ``striate.data.paths``).
        image_size: square side to resize to (native size when None).
        seed: drives the train/val split and the ``limit`` shuffle.
        download: fetch missing files; when false, missing files raise an error.
        limit: keep only the first ``limit`` images after a seeded shuffle.
    """
    if split not in SPLITS:
        raise StriateError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    check_val_fraction(val_fraction, split)
    if image_size is not None and image_size < 1:
        raise StriateError(f"image_size must be positive, got {image_size}")
    if source.startswith(FOLDER_PREFIX):
        lazy = load_folder(source[len(FOLDER_PREFIX) :], split, image_size, val_fraction, seed)
        index = None
    else:
        lazy = _get(source)(
            "test" if split == "test" else "train", resolve_data_dir(data_dir), download
        )
        # the whole official training set (val_fraction 0) needs no index: no copy of it
        whole = split == "test" or val_fraction == 0
        index = None if whole else train_val_index(lazy.labels, split, val_fraction, seed)
    labels = lazy.labels if index is None else lazy.labels[index]
    if len(labels) == 0:
        raise StriateError(f"split {split!r} of {source} is empty; lower val_fraction or add data")
    index = compose(index, limit_index(len(labels), limit, seed))
    images = lazy.fetch(index)
    labels = lazy.labels if index is None else lazy.labels[index]
    if image_size is not None:
        images = _resize(images, image_size)
    return ImageData(images, labels, list(lazy.classes))
