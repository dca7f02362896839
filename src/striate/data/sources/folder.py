"""Your own images: one sub-folder per class, in memory or streamed from disk.

Layouts:

* ``PATH/<class>/*.png|jpg|...`` — the files of each class are split reproducibly (seeded,
  class by class) into test (10%), val (``val_fraction``) and train (the rest);
* ``PATH/train/<class>/...`` plus optional ``PATH/val/`` (or ``valid/``, ``validation/``)
  and ``PATH/test/`` — those are the splits; without ``val/``, val is carved from train.

All images get one channel count (1 if every image is grayscale, else 3) and one square
size (default: the shorter side of the most common image size, at most 256), made with
``to_square`` (centre crop + resize).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from striate.data.sources._split import (
    LazyImages,
    check_val_fraction,
    stratified_split,
)
from striate.data.transforms.functional import to_square
from striate.errors import StriateError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}
)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
TEST_FRACTION = 0.1
MAX_DEFAULT_SIZE = 256


# -- single images -------------------------------------------------------------------------


def _to_array(im: Image.Image, channels: int) -> np.ndarray:
    """(H, W, channels) uint8 from any PIL mode; transparency is composited on white."""
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16"):
            a = a / 257.0
        elif a.size and a.max() > 255:
            a = a * (255.0 / a.max())
        gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], channels, axis=2)
    if mode in ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    out = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    return out[..., None] if out.ndim == 2 else out


def _open(path: Path | bytes, name: str) -> Image.Image:
    """Open (header only) with one-line errors for the usual problems."""
    try:
        return Image.open(io.BytesIO(path) if isinstance(path, bytes) else path)
    except FileNotFoundError:
        raise StriateError(f"image file {name} not found") from None
    except IsADirectoryError:
        raise StriateError(f"{name} is a directory, not an image file") from None
    except PermissionError:
        raise StriateError(f"cannot read {name}: permission denied") from None
    except Image.DecompressionBombError as exc:
        raise StriateError(f"{name} is too large to decode safely ({exc})") from None
    except Exception as exc:  # UnidentifiedImageError, SyntaxError, struct errors...
        raise StriateError(f"{name} is not a readable image ({exc})") from None


def read_image_file(
    path: str | Path | bytes, channels: int | None = None, max_pixels: int | None = None
) -> torch.Tensor:
    """Decode one image file (or the bytes of one) to a uint8 tensor (C, H, W).

    Args:
        channels: 1 (grayscale) or 3 (RGB); None keeps grayscale images grayscale and
            turns everything else into RGB.
        max_pixels: refuse images of more pixels (width x height, read from the header
            before anything is decoded, so a decompression bomb costs nothing).
    """
    name = "the image" if isinstance(path, bytes) else str(path)
    if not name:  # Path("") is the current directory: say what was given instead
        raise StriateError("an empty path is not an image file")
    path = path if isinstance(path, bytes) else Path(path)
    if channels not in (None, 1, 3):
        raise StriateError(f"channels must be 1 or 3, got {channels}")
    with _open(path, name) as im:
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise StriateError(
                f"{name} has {im.width}x{im.height} pixels; at most {max_pixels:,} are accepted"
            )
        try:
            im.load()
        except Exception as exc:  # OSError (truncated), SyntaxError, DecompressionBombError...
            raise StriateError(
                f"cannot decode image {name}: corrupt or truncated ({exc})"
            ) from None
        try:
            oriented = ImageOps.exif_transpose(im) or im  # photos: honour the EXIF rotation
        except Exception:  # a broken EXIF block is no reason to reject the pixels
            oriented = im
        wanted = channels or (1 if im.mode in GRAY_MODES else 3)
        array = _to_array(oriented, wanted)
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).contiguous()


# -- folder layout -------------------------------------------------------------------------


def _listdir(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except PermissionError:
        raise StriateError(f"cannot read folder {path}: permission denied") from None
    except OSError as exc:
        raise StriateError(f"cannot read folder {path}: {exc.strerror or exc}") from None


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a folder (following symlinks); a symlink that loops onto itself
    or cannot be followed is one line."""
    try:
        return entry.is_dir()
    except OSError as exc:
        raise StriateError(f"cannot read {entry.path}: {exc.strerror or exc}") from None


def _folder_key(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError as exc:
        raise StriateError(f"cannot read folder {path}: {exc.strerror or exc}") from None
    return info.st_dev, info.st_ino


def _image_files(path: Path, above: frozenset[tuple[int, int]] = frozenset()) -> list[Path]:
    """The image files under ``path``, any depth; ``above`` are the folders it lies in, so a
    symlink back to one of them (a loop) is refused instead of being followed forever."""
    key = _folder_key(path)
    if key in above:
        raise StriateError(f"folder {path} loops: a symlink leads back to a folder above it")
    above = above | {key}
    found: list[Path] = []
    for entry in _listdir(path):
        if _is_dir(entry):
            found.extend(_image_files(Path(entry.path), above))
        elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
            found.append(Path(entry.path))
    return found


def _class_files(path: Path) -> dict[str, list[Path]]:
    classes = {}
    above = frozenset({_folder_key(path)})
    for entry in _listdir(path):
        if _is_dir(entry):
            files = _image_files(Path(entry.path), above)
            if files:
                classes[entry.name] = files
    return classes


@dataclass
class FolderIndex:
    """The files of an image folder, by split (or all together), with class labels."""

    root: Path
    classes: list[str]
    parts: dict[str, list[tuple[Path, int]]]  # "train"/"val"/"test", or "all"
    _probe: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    def scan(cls, path: str | Path) -> FolderIndex:
        text = str(path).removeprefix("folder:")
        if not text:  # Path("") is the current directory: never search it by accident
            raise StriateError("folder: needs a path, as in folder:photos")
        root = Path(text).expanduser()
        if not root.exists():
            if root.is_symlink():
                raise StriateError(f"image folder {root} is a symlink that loops or leads nowhere")
            raise StriateError(f"image folder {root} does not exist")
        if not root.is_dir():
            raise StriateError(f"{root} is not a directory (expected one sub-folder per class)")
        names = {e.name for e in _listdir(root) if _is_dir(e)}
        split_dirs = {
            split: root / next(n for n in options if n in names)
            for split, options in SPLIT_DIRS.items()
            if any(n in names for n in options)
        }
        if "train" in split_dirs:
            by_split = {split: _class_files(d) for split, d in split_dirs.items()}
        else:
            by_split = {"all": _class_files(root)}
        classes = sorted({c for files in by_split.values() for c in files})
        if not classes:
            loose = [p for p in _listdir(root) if Path(p.name).suffix.lower() in IMAGE_EXTENSIONS]
            hint = (
                "it holds images but no class sub-folders; put each class in its own sub-folder"
                if loose
                else "expected one sub-folder per class with png/jpg/bmp/gif/webp/tiff files"
            )
            raise StriateError(f"no images found in {root}: {hint}")
        if len(classes) < 2:
            raise StriateError(
                f"{root} has only one class ({classes[0]}); a classifier needs at least two "
                "class sub-folders"
            )
        label = {c: i for i, c in enumerate(classes)}
        parts = {
            split: [(f, label[c]) for c in sorted(files) for f in files[c]]
            for split, files in by_split.items()
        }
        return cls(root, classes, parts)

    def all_files(self) -> list[Path]:
        return [f for items in self.parts.values() for f, _ in items]

    def items(self, split: str, val_fraction: float = 0.1, seed: int = 0):
        """[(path, label)] of ``split``, reproducible for a given seed."""
        check_val_fraction(val_fraction, split)
        if "all" in self.parts:  # no split folders: test, val and train carved per class
            pool = self.parts["all"]
            fractions, names = (TEST_FRACTION, val_fraction), ("test", "val", "train")
        elif split == "test" or "val" in self.parts:
            if split not in self.parts:
                raise StriateError(f"{self.root} has a train/ folder but no {split}/ folder")
            return self.parts[split]
        else:  # train/ without val/: val carved from train
            pool = self.parts["train"]
            fractions, names = (val_fraction,), ("val", "train")
        labels = torch.tensor([y for _, y in pool], dtype=torch.long)
        chosen = stratified_split(labels, fractions, seed)[names.index(split)]
        return [pool[i] for i in chosen.tolist()]

    def probe(self) -> tuple[int, int]:
        """(channels, default image size) over every image of the folder (headers only)."""
        if self._probe is None:
            gray, sizes = True, Counter()
            for path in self.all_files():
                with _open(path, str(path)) as im:
                    gray = gray and im.mode in GRAY_MODES
                    sizes[im.size] += 1
            (w, h), _ = sizes.most_common(1)[0]
            self._probe = (1 if gray else 3, min(w, h, MAX_DEFAULT_SIZE))
        return self._probe

    def resolve(self, image_size: int | None, channels: int | None) -> tuple[int, int]:
        if image_size is not None and image_size < 1:
            raise StriateError(f"image_size must be positive, got {image_size}")
        if image_size is None or channels is None:
            probed_channels, probed_size = self.probe()
            channels = channels or probed_channels
            image_size = image_size or probed_size
        return channels, image_size


def load_image(path: Path, channels: int, image_size: int) -> torch.Tensor:
    return to_square(read_image_file(path, channels), image_size)


def load_folder(
    path: str | Path,
    split: str,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> LazyImages:
    """The ``split`` of an image folder; pixels are decoded only when fetched."""
    index = FolderIndex.scan(path)
    items = index.items(split, val_fraction, seed)
    if not items:
        raise StriateError(f"{index.root} has no images for split {split!r} (too few images?)")
    channels, size = index.resolve(image_size, None)

    def fetch(selection: torch.Tensor | None) -> torch.Tensor:
        chosen = items if selection is None else [items[i] for i in selection.tolist()]
        out = torch.empty((len(chosen), channels, size, size), dtype=torch.uint8)
        for row, (file, _) in enumerate(chosen):
            out[row] = load_image(file, channels, size)
        return out

    labels = torch.tensor([y for _, y in items], dtype=torch.long)
    return LazyImages(labels, list(index.classes), fetch)


class ImageFolderStream(Dataset):
    """An image folder read from disk item by item, for sets too large for memory.

    Same layouts and split rules as the in-memory ``folder:`` source. Each item is
    ``(uint8 tensor (C, image_size, image_size), label)``.
    """

    def __init__(
        self,
        path: str | Path,
        split: str = "train",
        image_size: int | None = None,
        channels: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        index = FolderIndex.scan(path)
        self.root = index.root
        self.classes = list(index.classes)
        self.samples = index.items(split, val_fraction, seed)
        if not self.samples:
            raise StriateError(f"{self.root} has no images for split {split!r}")
        self.channels, self.image_size = index.resolve(image_size, channels)
        self.labels = torch.tensor([y for _, y in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return load_image(path, self.channels, self.image_size), label


def estimate_folder_bytes(
    path: str | Path,
    image_size: int | None = None,
    split: str | None = None,
    channels: int | None = None,
) -> int:
    """Bytes the decoded uint8 images of ``split`` (None: all splits) would take in memory."""
    index = FolderIndex.scan(path)
    n = len(index.all_files()) if split is None else len(index.items(split))
    channels, size = index.resolve(image_size, channels)
    return n * channels * size * size
