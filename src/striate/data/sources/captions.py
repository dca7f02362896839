"""Caption sources: images with several reference captions each, by name.

Source names (``load_caption_data(source, split, ...)``):

* ``shapes``, ``shapes:N`` or ``shapes:N,objects=K`` — the embedded generated set
  (:mod:`.shapes`): N training images (default 8,000), 500 validation and 500 test images,
  five captions each, 1 to K objects per image (default 3). No files.
* ``coco:ANNOTATIONS_JSON[,IMAGES_DIR]`` — a COCO captions file
  (``annotations/captions_*.json``: ``images[].{id, file_name}`` and
  ``annotations[].{image_id, caption}``). ``IMAGES_DIR`` defaults to the folder named like
  the file's suffix next to ``annotations/`` (``captions_val2014.json`` → ``val2014/``).
* ``flickr8k:TOKEN_FILE[,IMAGES_DIR]`` — a Flickr8k token file, one ``image.jpg#k<TAB>caption``
  per line (or the CSV export with an ``image,caption`` header). ``IMAGES_DIR`` defaults to
  ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/`` or ``Images/`` beside the file, else the
  file's own folder.

File sources are split by image, reproducibly: Flickr8k's official
``Flickr_8k.{train,dev,test}Images.txt`` lists when they lie beside the token file,
otherwise a seeded shuffle of the image names gives test (10%), val (``val_fraction``) and
train (the rest). Images are decoded to RGB, centre-cropped and resized to one square side;
a missing or unreadable image stops with one line naming the file.
"""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.data.sources._split import check_val_fraction, limit_index
from striate.data.sources.folder import read_image_file
from striate.data.transforms.functional import to_square
from striate.errors import StriateError

TEST_FRACTION = 0.1
DEFAULT_FILE_IMAGE_SIZE = 64
FLICKR_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
FLICKR_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
SPLITS = ("train", "val", "test")


@dataclass
class CaptionData:
    """Images held in memory, each with one or more reference captions.

    Attributes:
        images: uint8 tensor (N, 3, S, S).
        captions: ``captions[i]`` is the list of reference captions (raw text) of image i.
        names: an identifier per image (its file name, or ``shapes/SPLIT/i``).
    """

    images: torch.Tensor
    captions: list[list[str]]
    names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if not len(self.captions) == len(self.names) == self.images.shape[0]:
            raise ValueError("one caption list and one name per image")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]


# ---------------------------------------------------------------------------------------------
# annotation readers


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StriateError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise StriateError(f"{what} {path} is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StriateError(f"cannot read {what} {path} ({exc})") from None


def read_coco_captions(path: str | Path) -> list[tuple[str, list[str]]]:
    """(file name, captions) per image of a COCO captions JSON, in the file's image order.

    Images without a caption are left out.
    """
    path = Path(path)
    try:
        data = json.loads(_read_text(path, "COCO annotations file"))
        files = {int(img["id"]): str(img["file_name"]) for img in data["images"]}
        captions: dict[int, list[str]] = {key: [] for key in files}
        for ann in data["annotations"]:
            text = " ".join(str(ann["caption"]).split())
            if text:
                captions[int(ann["image_id"])].append(text)
    except json.JSONDecodeError as exc:
        raise StriateError(f"{path} is not valid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise StriateError(
            f"{path} is not a COCO captions file: need images[].id/file_name and "
            f"annotations[].image_id/caption (problem: {exc!r})"
        ) from None
    return [(files[key], texts) for key, texts in captions.items() if texts]


def read_flickr_captions(path: str | Path) -> list[tuple[str, list[str]]]:
    """(file name, captions) per image of a Flickr8k token file, in first-seen order.

    Lines are ``image.jpg#k<TAB>caption``; the CSV export (``image,caption`` header) works too.
    """
    path = Path(path)
    text = _read_text(path, "caption file")
    captions: dict[str, list[str]] = {}
    lines = text.splitlines()
    if lines and lines[0].strip().lower() == "image,caption":
        rows = [(row[0], ",".join(row[1:])) for row in csv.reader(lines[1:]) if row]
    else:
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            key, tab, caption = line.partition("\t")
            if not tab:
                raise StriateError(
                    f"{path}:{number}: expected 'image.jpg#k<TAB>caption', got {line[:60]!r}"
                )
            rows.append((key.split("#", 1)[0].strip(), caption))
    for name, caption in rows:
        caption = " ".join(caption.split())
        if name and caption:
            captions.setdefault(name, []).append(caption)
    if not captions:
        raise StriateError(f"{path} holds no captions")
    return list(captions.items())


# ---------------------------------------------------------------------------------------------
# sources


def parse_source(source: str) -> tuple[str, str, str | None]:
    """``"coco:A.json,IMAGES"`` → ("coco", "A.json", "IMAGES"); ``"shapes:100"`` → (..., None)."""
    kind, _, rest = source.partition(":")
    if kind not in ("shapes", "coco", "flickr8k"):
        raise StriateError(
            f"unknown caption source {source!r}; use shapes[:N[,objects=K]], "
            "coco:ANNOTATIONS_JSON[,IMAGES_DIR] or flickr8k:TOKEN_FILE[,IMAGES_DIR]"
        )
    if kind != "shapes" and not rest:
        raise StriateError(f"caption source {kind} needs a file: {kind}:PATH[,IMAGES_DIR]")
    path, _, images = rest.partition(",")
    return kind, path, images or None


def _shapes_options(count: str, options: str | None) -> tuple[int | None, int]:
    """``shapes:N,objects=K`` → (N or None, K)."""
    max_objects = 3
    if options:
        key, _, value = options.partition("=")
        if key != "objects" or not value.isdigit():
            raise StriateError(f"shapes takes shapes:N,objects=K, not option {options!r}")
        max_objects = int(value)
    if not count:
        return None, max_objects
    if not count.isdigit() or int(count) < 1:
        raise StriateError(f"shapes:N takes a positive number of images, not {count!r}")
    return int(count), max_objects


def _resolve(path: str, data_dir: str | Path | None) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.exists() and data_dir is not None and not candidate.is_absolute():
        inside = Path(data_dir) / candidate
        if inside.exists():
            return inside
    return candidate


def _coco_images_dir(annotations: Path) -> Path:
    stem = annotations.stem.removeprefix("captions_")
    return annotations.parent.parent / stem


def _flickr_images_dir(token_file: Path) -> Path:
    for name in FLICKR_IMAGE_DIRS:
        if (token_file.parent / name).is_dir():
            return token_file.parent / name
    return token_file.parent


def _split_items(
    items: list[tuple[str, list[str]]], split: str, val_fraction: float, seed: int
) -> list[tuple[str, list[str]]]:
    """Seeded split by image name: test (10%), val (``val_fraction``), train (the rest)."""
    names = sorted(name for name, _ in items)
    rng = np.random.Generator(np.random.PCG64(seed * 1_000_003 + zlib.crc32(b"captions")))
    order = [names[i] for i in rng.permutation(len(names))]
    n_test = max(1, round(len(names) * TEST_FRACTION))
    n_val = max(1, round(len(names) * val_fraction)) if val_fraction > 0 else 0
    if n_test + n_val >= len(names):
        raise StriateError(f"{len(names)} images are too few for train, val and test splits")
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    chosen = set(parts[split])
    return [item for item in items if item[0] in chosen]


def _official_flickr_split(token_file: Path, split: str) -> set[str] | None:
    listing = token_file.parent / FLICKR_SPLIT_FILES[split]
    if not listing.is_file():
        return None
    return {line.strip() for line in _read_text(listing, "split list").splitlines() if line.strip()}


def _load_files(
    items: list[tuple[str, list[str]]], images_dir: Path, image_size: int
) -> torch.Tensor:
    if not images_dir.is_dir():
        raise StriateError(f"images folder {images_dir} not found (give it after a comma)")
    out = torch.empty((len(items), 3, image_size, image_size), dtype=torch.uint8)
    for row, (name, _) in enumerate(items):
        out[row] = to_square(read_image_file(images_dir / name, 3), image_size)
    return out


def load_caption_data(
    source: str,
    split: str,
    *,
    image_size: int | None = None,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> CaptionData:
    """A split (``train``, ``val`` or ``test``) of a caption source (see the module docstring).

    ``image_size`` defaults to 32 px for ``shapes`` and 64 px for files; ``limit`` keeps the
    first N images of a seeded shuffle; ``seed`` fixes the file sources' random split (the
    shapes splits are fixed by the source alone, so every run sees the same test images).
    """
    if split not in SPLITS:
        raise StriateError(f"unknown split {split!r}; use train, val or test")
    check_val_fraction(val_fraction, split)
    kind, path, images_arg = parse_source(source)
    if kind == "shapes":
        from striate.data.sources.shapes import load_shapes

        count, max_objects = _shapes_options(path, images_arg)
        images, captions = load_shapes(
            split, image_size or 32, count if split == "train" else None, 0, max_objects
        )
        items = [(f"shapes/{split}/{i}", refs) for i, refs in enumerate(captions)]
    else:
        file = _resolve(path, data_dir)
        if kind == "coco":
            items = read_coco_captions(file)
            default_dir, official = _coco_images_dir(file), None
        else:
            items = read_flickr_captions(file)
            default_dir, official = _flickr_images_dir(file), _official_flickr_split(file, split)
        if official is not None:
            items = [item for item in items if item[0] in official]
        else:
            items = _split_items(items, split, val_fraction, seed)
        if not items:
            raise StriateError(f"{file} has no images in split {split!r}")
        images = None  # decoded below, after the limit
    keep = limit_index(len(items), limit, seed) if split == "train" else None
    if keep is not None:
        keep = keep.sort().values
        items = [items[i] for i in keep.tolist()]
        images = images[keep] if images is not None else None
    if images is None:
        images_dir = _resolve(images_arg, data_dir) if images_arg else default_dir
        images = _load_files(items, images_dir, image_size or DEFAULT_FILE_IMAGE_SIZE)
    return CaptionData(images, [refs for _, refs in items], [name for name, _ in items])
