"""Video clips with a label per frame: what every video source returns, and your own clips.

The lecture's "video classification on frame level" is the synced many-to-many pattern: one
input frame and one output label per time step. Every source returns a :class:`VideoData`
(uint8 frames, padded to the longest clip, with the true lengths); :func:`load_video_data`
is the one entry point.

Sources:

* ``moving-digits`` (generated, no download): digits that move, change and hide; see
  :mod:`striate.data.sources.moving_digits` for the generator and its labelling rule.
* ``folder:PATH``: your clips. ``PATH/<clip>/`` is a folder of frame images (read in sorted
  name order) with ``labels.txt`` beside them; ``PATH/<clip>.mp4`` (or .avi, .mkv, .mov,
  .webm, .m4v) is a video file, decoded with PyAV when it is installed, whose labels are in
  ``PATH/<clip>.labels.txt``. A label file holds one class name per line, one line per
  frame, in frame order (blank lines at the very end are ignored). As for image folders,
  ``PATH/train/``, ``PATH/val/`` and ``PATH/test/`` are taken as the splits when present;
  otherwise the clips are split reproducibly (seeded): 10% test, ``val_fraction`` val, the
  rest train. One clip on disk is read and written by :mod:`striate.data.sources.clips`
  (:func:`load_clip`, :func:`save_clip`).

Example:
    >>> from striate.data.sources.moving_digits import MovingDigits
    >>> data = load_video_data("moving-digits", "val", spec=MovingDigits(frames=12), clips=8)
    >>> tuple(data.frames.shape), tuple(data.labels.shape), data.classes[:3]
    ((8, 12, 1, 32, 32), (8, 12), ['0', '1', '2'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from striate.data.sources.base import SPLITS
from striate.data.sources.clips import (
    LABELS_FILE,
    LABELS_SUFFIX,
    VIDEO_EXTENSIONS,
    frame_files,
    label_file,
    load_clip,
    read_labels,
    save_clip,
)
from striate.errors import StriateError

if TYPE_CHECKING:  # the generator builds a VideoData, so it is imported lazily below
    from striate.data.sources.moving_digits import MovingDigits

__all__ = [
    "FOLDER_PREFIX",
    "MOVING_DIGITS",
    "PAD_LABEL",
    "VIDEO_EXTENSIONS",
    "VideoData",
    "load_clip",
    "load_video_data",
    "read_labels",
    "save_clip",
    "video_sources",
]

MOVING_DIGITS = "moving-digits"
FOLDER_PREFIX = "folder:"
PAD_LABEL = -1  # the label of frames past a clip's length
FOLDER_TEST_FRACTION = 0.1
MAX_DEFAULT_FOLDER_SIZE = 64


@dataclass
class VideoData:
    """Labelled clips held in memory, padded to one length.

    Attributes:
        frames: uint8 (N, T, C, S, S); frames past a clip's length are zero.
        labels: int64 (N, T), class indices, :data:`PAD_LABEL` past each clip's length.
        lengths: int64 (N,), each clip's frame count (1..T).
        memory: bool (N, T), the frames whose label cannot be seen in the frame itself (the
            generated set's hidden frames); all False for your clips, where it is unknown.
        classes: class names, index = label.
        names: one name per clip (file or folder name; ``clip-00012`` for generated ones).
    """

    frames: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    memory: torch.Tensor
    classes: list[str]
    names: list[str]

    def __post_init__(self) -> None:
        n, t = self.labels.shape
        if self.frames.dtype != torch.uint8 or self.frames.dim() != 5:
            raise ValueError("frames must be a uint8 tensor of shape (N, T, C, S, S)")
        if self.frames.shape[:2] != (n, t) or self.memory.shape != (n, t):
            raise ValueError("frames, labels and memory must agree on (N, T)")
        if self.lengths.shape != (n,) or len(self.names) != n:
            raise ValueError("lengths and names must have one entry per clip")

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def channels(self) -> int:
        return self.frames.shape[2]

    @property
    def image_size(self) -> int:
        return self.frames.shape[-1]

    @property
    def valid(self) -> torch.Tensor:
        """bool (N, T): the frames inside each clip's length."""
        return self.labels != PAD_LABEL

    def targets(self) -> torch.Tensor:
        """int64 (N, T, 2): the label and the memory flag of every frame, stacked, which is
        the form the training batches carry them in."""
        return torch.stack([self.labels, self.memory.long()], dim=-1)


def _clips_in(folder: Path) -> list[Path]:
    """The clips of one folder: sub-folders with frames, and video files."""
    clips = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        is_video = entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS
        if is_video or (entry.is_dir() and entry.name not in SPLITS and frame_files(entry)):
            clips.append(entry)
    return clips


def _folder_clips(root: Path, split: str, val_fraction: float, seed: int) -> list[Path]:
    splits = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" in splits:
        if split in splits:
            return _clips_in(splits[split])
        if split == "test":
            raise StriateError(f"{root} has a train/ folder but no test/ folder")
        pool = _clips_in(splits["train"])
        fractions = (0.0, val_fraction)
    else:
        pool = _clips_in(root)
        fractions = (FOLDER_TEST_FRACTION, val_fraction)
    n = len(pool)
    if n == 0:
        return []
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(round(n * fractions[0]), 1) if fractions[0] and n >= 3 else 0
    n_val = max(round(n * fractions[1]), 1) if fractions[1] and n - n_test >= 2 else 0
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, n)}
    lo, hi = bounds[split]
    return sorted(pool[i] for i in order[lo:hi])


def _all_clips(root: Path) -> list[Path]:
    splits = [root / s for s in SPLITS if (root / s).is_dir()]
    return [c for folder in splits or [root] for c in _clips_in(folder)]


def _folder_classes(root: Path) -> list[str]:
    """Every label used by any clip of the folder, sorted (so splits agree on indices)."""
    names = set()
    for clip in _all_clips(root):
        names.update(read_labels(label_file(clip)))
    return sorted(names)


def _load_folder(
    path: str,
    split: str,
    image_size: int | None,
    channels: int | None,
    val_fraction: float,
    seed: int,
) -> VideoData:
    if not path:  # Path("") is the current directory: never search it by accident
        raise StriateError(f"{FOLDER_PREFIX} needs a path, as in {FOLDER_PREFIX}clips")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise StriateError(f"clip folder {root} does not exist or is not a directory")
    if not _all_clips(root):
        raise StriateError(
            f"no clips found in {root}: expected sub-folders of frame images with "
            f"{LABELS_FILE}, or video files with NAME{LABELS_SUFFIX}"
        )
    clips = _folder_clips(root, split, val_fraction, seed)
    if not clips:
        raise StriateError(f"{root} has no clips for split {split!r} (too few clips?)")
    classes = _folder_classes(root)
    if len(classes) < 2:
        raise StriateError(f"the clips of {root} use only one label; need at least two")
    index = {c: i for i, c in enumerate(classes)}
    if image_size is None:
        first, _ = load_clip(_all_clips(root)[0], channels, None, with_labels=False)
        image_size = min(first.shape[-1], first.shape[-2], MAX_DEFAULT_FOLDER_SIZE)
    read = [load_clip(c, channels, image_size) for c in clips]
    if channels is None:
        channels = max(frames.shape[1] for frames, _ in read)
    longest = max(len(frames) for frames, _ in read)
    n = len(read)
    out = torch.zeros((n, longest, channels, image_size, image_size), dtype=torch.uint8)
    labels = torch.full((n, longest), PAD_LABEL, dtype=torch.int64)
    lengths = torch.empty(n, dtype=torch.int64)
    for i, (frames, names) in enumerate(read):
        out[i, : len(frames)] = frames.expand(-1, channels, -1, -1)
        labels[i, : len(frames)] = torch.tensor([index[name] for name in names])
        lengths[i] = len(frames)
    memory = torch.zeros((n, longest), dtype=torch.bool)
    return VideoData(out, labels, lengths, memory, classes, [c.name for c in clips])


# ---------------------------------------------------------------------------------------------
# the one entry point


def video_sources() -> list[str]:
    """The built-in source, plus the ``folder:PATH`` pattern."""
    return [MOVING_DIGITS, f"{FOLDER_PREFIX}PATH"]


def load_video_data(
    source: str,
    split: str = "train",
    *,
    spec: MovingDigits | None = None,
    clips: int | None = None,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> VideoData:
    """Load one split of a video source into memory.

    Args:
        source: ``moving-digits`` or ``folder:PATH``.
        split: "train", "val" or "test".
        spec: the generated set's parameters (default
            :class:`~striate.data.sources.moving_digits.MovingDigits`).
        clips: how many clips to generate (default 3000 train, 500 val, 1000 test).
        data_dir: where MNIST lies when ``spec.digits`` is ``mnist``.
        image_size: folders: square side of every frame (default: the first frame's
            shorter side, at most 64). The generated set uses ``spec.image_size``.
        channels: folders: 1 or 3 (default: 1 if every frame is grayscale).
        val_fraction: folders: share of the clips held out for validation.
        seed: drives the generated train/val clips and the folder split.
    """
    if split not in SPLITS:
        raise StriateError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if source == MOVING_DIGITS:
        from striate.data.sources.moving_digits import MovingDigits, load_moving_digits

        return load_moving_digits(split, spec or MovingDigits(), clips, seed, data_dir)
    if source.startswith(FOLDER_PREFIX):
        if not 0 <= val_fraction < 1:
            raise StriateError(f"val_fraction must be in [0, 1), got {val_fraction}")
        return _load_folder(
            source[len(FOLDER_PREFIX) :], split, image_size, channels, val_fraction, seed
        )
    raise StriateError(
        f"unknown video source {source!r}; use {MOVING_DIGITS} or {FOLDER_PREFIX}PATH"
    )
