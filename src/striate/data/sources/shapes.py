"""``shapes``: an embedded image-captioning set of coloured shapes, generated from a seed.

The lecture's "one to many" example is image captioning, image → sequence of words. Real
caption sets (COCO, Flickr8k; see :mod:`striate.data.sources.captions`) are large downloads,
so this generator draws a small world whose captions a model can only get right by looking:

* an image (RGB, any side; 32 px by default) is a 3 x 3 grid of cells on a dark, noisy
  background; one to three objects sit in distinct cells (jittered around the cell centre);
* each object has a shape (circle, square, triangle, cross), a colour (red, green, blue,
  yellow, purple) and a size (small, large);
* five reference captions per image, in different wordings and orders: one object is
  placed absolutely ("a small red circle in the top left corner"), two are related
  ("a large blue square above a small green triangle" and its inverse "... below ..."),
  three are listed in reading order and in reverse.

So colour, shape, size and layout each change the words. Everything is vectorised (numpy,
2x supersampled for smooth edges): 8,000 images of 32 px take about 0.6 s on two cores. The
same (split, count, image size, seed) always gives the same images and captions; the
three splits are drawn from independent streams, so no image is shared by accident.

Example:
    >>> images, captions, scenes = generate_shapes(2, image_size=32, seed=0)
    >>> images.shape, len(captions[0])
    (torch.Size([2, 3, 32, 32]), 5)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from striate.errors import StriateError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 45, 40),
    "green": (40, 190, 60),
    "blue": (45, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (165, 55, 215),
}
SIZES: tuple[str, ...] = ("small", "large")
GRID = 3  # cells per side
MAX_OBJECTS = 3
# the place of an object alone in the image, by (row, column) of its cell
WHERE: dict[tuple[int, int], str] = {
    (0, 0): "in the top left corner",
    (0, 1): "at the top",
    (0, 2): "in the top right corner",
    (1, 0): "on the left",
    (1, 1): "in the middle",
    (1, 2): "on the right",
    (2, 0): "in the bottom left corner",
    (2, 1): "at the bottom",
    (2, 2): "in the bottom right corner",
}
SPLIT_COUNTS = {"train": 8000, "val": 500, "test": 500}
RADIUS = {"small": 0.26, "large": 0.42}  # object radius as a fraction of the cell side
JITTER = 0.06  # centre offset, fraction of the cell side (large objects stay in their cell)
SUPERSAMPLE = 2
CHUNK = 512  # images rasterised at once


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: what it is and where (pixel centre and radius at the image size)."""

    shape: str
    color: str
    size: str
    row: int
    col: int
    cx: float
    cy: float
    radius: float

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.color} {self.shape}"

    @property
    def plain(self) -> str:  # without the size
        return f"{self.color} {self.shape}"


def _relation(a: ShapeObject, b: ShapeObject) -> tuple[str, str]:
    """(a's relation to b, b's relation to a), for ``a`` before ``b`` in reading order."""
    if a.row != b.row:
        return "above", "below"
    return "to the left of", "to the right of"


def describe(scene: list[ShapeObject]) -> list[str]:
    """Five reference captions of a scene (objects given in reading order)."""
    if len(scene) == 1:
        (a,) = scene
        where = WHERE[(a.row, a.col)]
        return [
            f"a {a.phrase} {where}",
            f"there is a {a.phrase} {where}",
            f"{where} there is a {a.phrase}",
            f"a {a.plain} {where}",
            f"a single {a.phrase} {where}",
        ]
    if len(scene) == 2:
        a, b = scene
        rel, inverse = _relation(a, b)
        return [
            f"a {a.phrase} {rel} a {b.phrase}",
            f"a {b.phrase} {inverse} a {a.phrase}",
            f"there is a {a.phrase} {rel} a {b.phrase}",
            f"two shapes: a {a.phrase} and a {b.phrase}",
            f"a {a.plain} {rel} a {b.plain}",
        ]
    if len(scene) == 3:
        a, b, c = scene
        rel, _ = _relation(a, b)
        return [
            f"a {a.phrase}, a {b.phrase} and a {c.phrase}",
            f"three shapes: a {a.phrase}, a {b.phrase} and a {c.phrase}",
            f"a {a.phrase} {rel} a {b.phrase} and a {c.phrase}",
            f"a {c.phrase}, a {b.phrase} and a {a.phrase}",
            f"a {a.plain}, a {b.plain} and a {c.plain}",
        ]
    raise ValueError(f"a scene holds 1 to {MAX_OBJECTS} objects, got {len(scene)}")


def _sample_attributes(
    count: int, image_size: int, rng: np.random.Generator, max_objects: int
) -> dict:
    """Per image and object slot (N, 3): presence, shape, colour, size, cell and geometry."""
    odds = np.array([0.3, 0.4, 0.3][:max_objects])
    n_objects = rng.choice(np.arange(1, max_objects + 1), size=count, p=odds / odds.sum())
    present = np.arange(MAX_OBJECTS)[None, :] < n_objects[:, None]
    # distinct cells: the first k of a random permutation of the 9, then in reading order
    cells = np.argsort(rng.random((count, GRID * GRID)), axis=1)[:, :MAX_OBJECTS]
    cells = np.where(present, cells, GRID * GRID)  # absent slots sort last
    cells.sort(axis=1)
    cell = image_size / GRID
    size = rng.integers(0, len(SIZES), (count, MAX_OBJECTS))
    radius = np.array([RADIUS[s] for s in SIZES])[size] * cell
    radius *= rng.uniform(0.92, 1.08, (count, MAX_OBJECTS))
    jitter = rng.uniform(-JITTER, JITTER, (count, MAX_OBJECTS, 2)) * cell
    row, col = np.minimum(cells // GRID, GRID - 1), cells % GRID
    return {
        "present": present,
        "shape": rng.integers(0, len(SHAPES), (count, MAX_OBJECTS)),
        "color": rng.integers(0, len(COLORS), (count, MAX_OBJECTS)),
        "size": size,
        "row": row,
        "col": col,
        "cx": (col + 0.5) * cell + jitter[..., 0],
        "cy": (row + 0.5) * cell + jitter[..., 1],
        "radius": radius,
        "tint": rng.uniform(-20, 20, (count, MAX_OBJECTS, 3)),
    }


def _masks(kind: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Inside-the-shape masks (n, H, W) for offsets ``dx, dy`` from each object's centre."""
    adx, ady = dx.abs(), dy.abs()
    circle = dx * dx + dy * dy <= r * r
    square = torch.maximum(adx, ady) <= r * 0.86  # about the circle's area
    # apex up at cy - r, base at cy + 0.75 r, base half-width 1.05 r
    triangle = (dy >= -r) & (dy <= 0.75 * r) & (adx <= (dy + r) * (1.05 / 1.75))
    arm = r * 0.36
    cross = ((adx <= arm) & (ady <= r)) | ((ady <= arm) & (adx <= r))
    k = kind[:, None, None]
    return torch.where(
        k == 0, circle, torch.where(k == 1, square, torch.where(k == 2, triangle, cross))
    )


def _render(attrs: dict, image_size: int, rng: np.random.Generator) -> torch.Tensor:
    """uint8 images (N, 3, S, S): a noisy background, then each present object's colour.

    Rasterised at SUPERSAMPLE times the side as a map of which object covers each pixel
    (0: background), coloured by one gather and averaged down: anti-aliased edges. Each
    object's mask is computed only in a window around it (it never leaves its cell).
    """
    count = attrs["present"].shape[0]
    big = image_size * SUPERSAMPLE
    palette = torch.tensor(list(COLORS.values()), dtype=torch.float32)
    background = torch.from_numpy(rng.uniform(10, 45, (count, 1, 3)).astype(np.float32))
    noise_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in attrs.items()}
    colors = palette[t["color"]] + t["tint"].float()  # (N, 3 objects, 3 channels)
    colors = torch.cat([background.expand(count, 1, 3), colors], 1)  # index 0: background
    reach = (max(RADIUS.values()) * 1.08 + JITTER) * image_size / GRID  # object half-extent
    window = min(big, 2 * int(np.ceil(reach * SUPERSAMPLE)) + 2)
    offsets = torch.arange(window)
    out = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, count, CHUNK):
        part = slice(start, min(start + CHUNK, count))
        n = part.stop - part.start
        owner = torch.zeros((n, big, big), dtype=torch.long)
        rows_of = torch.arange(n)[:, None, None]
        for slot in range(MAX_OBJECTS):
            cx, cy, r = (t[k][part, slot].float() for k in ("cx", "cy", "radius"))
            x0 = (cx * SUPERSAMPLE - window / 2).floor().long().clamp(0, big - window)
            y0 = (cy * SUPERSAMPLE - window / 2).floor().long().clamp(0, big - window)
            xs, ys = x0[:, None] + offsets, y0[:, None] + offsets  # (n, window) pixel indices
            dx = (xs.float() + 0.5) / SUPERSAMPLE - cx[:, None]
            dy = (ys.float() + 0.5) / SUPERSAMPLE - cy[:, None]
            inside = _masks(
                t["shape"][part, slot], dx[:, None, :], dy[:, :, None], r[:, None, None]
            )
            inside &= t["present"][part, slot][:, None, None]
            index = (rows_of, ys[:, :, None], xs[:, None, :])
            owner[index] = torch.where(inside, slot + 1, owner[index])
        canvas = torch.gather(colors[part], 1, owner.view(n, -1, 1).expand(n, big * big, 3))
        canvas = canvas.view(n, big, big, 3).permute(0, 3, 1, 2)
        small = torch.nn.functional.avg_pool2d(canvas, SUPERSAMPLE)
        small += torch.randn(small.shape, generator=noise_gen) * 6.0
        out[part] = small.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _scenes(attrs: dict) -> list[list[ShapeObject]]:
    colors = list(COLORS)
    scenes = []
    for i in range(attrs["present"].shape[0]):
        scene = [
            ShapeObject(
                SHAPES[attrs["shape"][i, k]],
                colors[attrs["color"][i, k]],
                SIZES[attrs["size"][i, k]],
                int(attrs["row"][i, k]),
                int(attrs["col"][i, k]),
                float(attrs["cx"][i, k]),
                float(attrs["cy"][i, k]),
                float(attrs["radius"][i, k]),
            )
            for k in range(MAX_OBJECTS)
            if attrs["present"][i, k]
        ]
        scenes.append(scene)
    return scenes


def generate_shapes(
    count: int, image_size: int = 32, seed: int = 0, max_objects: int = MAX_OBJECTS
) -> tuple[torch.Tensor, list[list[str]], list[list[ShapeObject]]]:
    """``count`` images with five reference captions each, and the scenes they show.

    Returns ``(images uint8 (count, 3, S, S), captions [count][5], scenes)``; the scenes
    list each image's objects in reading order (top to bottom, left to right). Images hold
    1 to ``max_objects`` objects (1, 2, 3 in proportions 3 : 4 : 3).
    """
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise StriateError(f"shapes images hold 1 to {MAX_OBJECTS} objects, not {max_objects}")
    if count < 1:
        raise StriateError(f"the shapes set needs at least one image, got {count}")
    if image_size < 2 * GRID:
        raise StriateError(f"shapes images need at least {2 * GRID} px, got {image_size}")
    rng = np.random.Generator(np.random.PCG64(seed))
    attrs = _sample_attributes(count, image_size, rng, max_objects)
    images = _render(attrs, image_size, rng)
    scenes = _scenes(attrs)
    return images, [describe(scene) for scene in scenes], scenes


def split_seed(seed: int, split: str) -> int:
    """Independent random streams for the splits of one dataset seed."""
    return (seed * 1_000_003 + zlib.crc32(f"shapes/{split}".encode())) % (2**63)


def load_shapes(
    split: str,
    image_size: int = 32,
    count: int | None = None,
    seed: int = 0,
    max_objects: int = MAX_OBJECTS,
) -> tuple[torch.Tensor, list[list[str]]]:
    """A split of the shapes set: (images, five captions per image).

    ``count`` defaults to 8,000 training and 500 validation and test images. The split's
    images depend only on its arguments, never on a training run's seed, so every run is
    measured on the same test images.
    """
    if split not in SPLIT_COUNTS:
        raise StriateError(f"unknown split {split!r}; use train, val or test")
    images, captions, _ = generate_shapes(
        count or SPLIT_COUNTS[split], image_size, split_seed(seed, split), max_objects
    )
    return images, captions
