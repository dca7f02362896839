"""``moving-digits``: an embedded video set of handwritten digits that move, change and hide.

The lecture's "video classification on frame level" asks for one label per frame. In this
generated set (no download) the label of some frames cannot be seen in the frame itself, so
a model with memory (CNN + RNN) can beat a per-frame CNN: handwritten digits (scikit-learn's
bundled 8x8 ``digits``, or MNIST from the data directory with ``digits="mnist"``) move,
bounce, change and disappear; see :func:`generate_moving_digits` for the exact labelling
rule. Train and val clips draw on the source's training glyphs, test clips on its held-out
glyphs with a fixed seed. The clips come back as a
:class:`~striate.data.sources.video.VideoData`, like every video source; load them through
:func:`striate.data.sources.video.load_video_data` with the source name ``moving-digits``.

Example:
    >>> data = load_moving_digits("val", MovingDigits(frames=12), clips=8, seed=0)
    >>> tuple(data.frames.shape), tuple(data.labels.shape), data.classes[:3]
    ((8, 12, 1, 32, 32), (8, 12), ['0', '1', '2'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.data.sources.images import load_image_data
from striate.data.sources.video import VideoData
from striate.data.transforms.functional import MAX_RESIZE_BYTES
from striate.errors import StriateError

__all__ = ["MovingDigits", "generate_moving_digits", "load_moving_digits"]

DEFAULT_CLIPS = {"train": 3000, "val": 500, "test": 1000}
TEST_SEED = 20241  # fixed: the moving-digits test clips never depend on the user's seed


@dataclass(frozen=True)
class MovingDigits:
    """The parameters of the generated set (defaults: 16 frames of 32x32, 16 px digits).

    Attributes:
        frames: T, frames per clip.
        image_size: S, side of the square canvas.
        digit_size: side the digit glyphs are resized to (default S // 2).
        max_speed: largest speed along each axis, in pixels per frame.
        change_prob: chance, at each frame after the first, that a new digit (a new glyph
            drawn from the whole pool) replaces the current one.
        hide_prob: chance that a visible frame is followed by a hidden one.
        stay_hidden_prob: chance that a hidden frame is followed by another hidden one.
        noise: background pixels are uniform in 0..noise.
        digits: where the glyphs come from: ``digits`` (bundled) or ``mnist``.
    """

    frames: int = 16
    image_size: int = 32
    digit_size: int | None = None
    max_speed: float = 2.5
    change_prob: float = 0.15
    hide_prob: float = 0.3
    stay_hidden_prob: float = 0.6
    noise: int = 40
    digits: str = "digits"

    def __post_init__(self) -> None:
        size = self.digit_size or self.image_size // 2
        checks = [
            (self.frames >= 1, f"frames must be at least 1, got {self.frames}"),
            (4 <= size <= self.image_size, f"digit size {size} must be in 4..image size"),
            (self.max_speed >= 0, "max speed must be non-negative"),
            (0 <= self.change_prob <= 1, "change probability must be in [0, 1]"),
            (0 <= self.hide_prob <= 1, "hide probability must be in [0, 1]"),
            (0 <= self.stay_hidden_prob < 1, "stay-hidden probability must be in [0, 1)"),
            (0 <= self.noise <= 255, "noise must be in 0..255"),
            (self.digits in ("digits", "mnist"), f"digits: digits or mnist, not {self.digits!r}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise StriateError(message)

    @property
    def glyph_size(self) -> int:
        return self.digit_size or self.image_size // 2


def _glyphs(spec: MovingDigits, part: str, data_dir: str | Path | None) -> tuple[np.ndarray, ...]:
    """(glyphs uint8 (G, D, D), classes int64 (G,)) from the source's ``part``."""
    images = load_image_data(
        spec.digits, part, data_dir=data_dir, image_size=spec.glyph_size, val_fraction=0.0
    )
    return images.images[:, 0].numpy(), images.labels.numpy()


def _bounce(start: np.ndarray, velocity: np.ndarray, frames: int, span: int) -> np.ndarray:
    """Positions start + v t reflected into [0, span] (a ball bouncing off the walls)."""
    raw = start[:, None] + velocity[:, None] * np.arange(frames)[None, :]
    if span == 0:
        return np.zeros_like(raw, dtype=np.int64)
    folded = np.mod(raw, 2 * span)
    return np.rint(np.where(folded > span, 2 * span - folded, folded)).astype(np.int64)


def check_clip_memory(clips: int, frames: int, size: int, glyph_size: int) -> None:
    """Refuse, before allocating, a set whose frames (and the digits drawn into them) would
    take more than :data:`MAX_RESIZE_BYTES`: every clip is generated in memory, so a count
    the parser accepts (``--clips 100000000``) would otherwise fill the machine's memory."""
    per_clip = frames * (size * size + glyph_size * glyph_size)  # uint8 canvas and glyphs
    if clips * per_clip > MAX_RESIZE_BYTES:
        raise StriateError(
            f"{clips:,} clips of {frames} frames of {size}x{size} pixels would take "
            f"{clips * per_clip / 2**30:.1f} GiB, over the limit of "
            f"{MAX_RESIZE_BYTES / 2**30:.0f} GiB; ask for at most "
            f"{MAX_RESIZE_BYTES // per_clip:,} clips"
        )


def generate_moving_digits(
    spec: MovingDigits,
    clips: int,
    seed: int,
    glyphs: np.ndarray,
    glyph_classes: np.ndarray,
) -> VideoData:
    """Generate ``clips`` clips, deterministically from ``seed`` (vectorised over clips).

    Each clip shows one digit glyph at a time on a noisy background. The digit moves in a
    straight line at a random velocity and bounces off the borders; at every frame after
    the first it is replaced, with probability ``change_prob``, by a new glyph (drawn from
    the whole pool, so possibly the same class again). Frame 0 is always visible; after a
    visible frame the next one is *hidden* with probability ``hide_prob``, and a hidden
    frame stays hidden with probability ``stay_hidden_prob``. A hidden frame is either
    blank (no digit) or occluded (an opaque grey square covers the whole digit), half and
    half, so it carries no information about the digit.

    The labelling rule: the label of frame t is the class of the digit most recently shown,
    i.e. the digit visible at the latest frame t' <= t that is not hidden. On visible
    frames that is the digit in the frame; on hidden frames (``memory`` True) it is the
    last digit seen before them, even if the digit changed while hidden, so only a model
    with memory can be right there: a per-frame model can only guess.
    """
    if clips < 1:
        raise StriateError(f"the number of clips must be positive, got {clips}")
    n, t, s, d = clips, spec.frames, spec.image_size, spec.glyph_size
    check_clip_memory(n, t, s, d)
    rng = np.random.default_rng([seed % (1 << 63), clips])
    span = s - d

    # what is shown: segments of one glyph each, a new segment at every change
    changes = rng.random((n, t)) < spec.change_prob
    changes[:, 0] = False
    segment = np.cumsum(changes, axis=1)
    segment_glyph = rng.integers(0, len(glyphs), size=(n, t))
    glyph = np.take_along_axis(segment_glyph, segment, axis=1)  # (N, T)

    # which frames are hidden: a two-state Markov chain, frame 0 always visible
    hidden = np.zeros((n, t), dtype=bool)
    draws = rng.random((n, t))
    for step in range(1, t):
        prob = np.where(hidden[:, step - 1], spec.stay_hidden_prob, spec.hide_prob)
        hidden[:, step] = draws[:, step] < prob
    occluded = hidden & (rng.random((n, t)) < 0.5)

    # the rule: the class of the glyph at the latest visible frame t' <= t
    steps = np.arange(t)[None, :]
    last_seen = np.maximum.accumulate(np.where(hidden, 0, steps), axis=1)
    labels = glyph_classes[np.take_along_axis(glyph, last_seen, axis=1)]

    # motion: bouncing straight lines
    y = _bounce(rng.uniform(0, span, n), rng.uniform(-1, 1, n) * spec.max_speed, t, span)
    x = _bounce(rng.uniform(0, span, n), rng.uniform(-1, 1, n) * spec.max_speed, t, span)

    # render: noise, then the digit on top (the brighter pixel wins)
    canvas = rng.integers(0, spec.noise + 1, size=(n, t, s, s), dtype=np.uint8)
    ni, ti = np.indices((n, t))
    rows = y[..., None, None] + np.arange(d)[:, None]  # (N, T, D, 1)
    cols = x[..., None, None] + np.arange(d)[None, :]  # (N, T, 1, D)
    index = (ni[..., None, None], ti[..., None, None], rows, cols)
    shown = glyphs[glyph] * (~hidden)[..., None, None].astype(np.uint8)
    canvas[index] = np.maximum(canvas[index], shown)
    # occluders: an opaque grey square reaching 2 px beyond the digit on every side
    grey = rng.integers(96, 256, size=(n, t), dtype=np.uint8)
    box = np.arange(-2, d + 2)
    box_rows = np.clip(y[..., None, None] + box[:, None], 0, s - 1)[occluded]  # (K, D+4, 1)
    box_cols = np.clip(x[..., None, None] + box[None, :], 0, s - 1)[occluded]  # (K, 1, D+4)
    at_n, at_t = ni[occluded][:, None, None], ti[occluded][:, None, None]
    canvas[at_n, at_t, box_rows, box_cols] = grey[occluded][:, None, None]

    frames = torch.from_numpy(canvas).unsqueeze(2)
    return VideoData(
        frames=frames,
        labels=torch.from_numpy(labels.astype(np.int64)),
        lengths=torch.full((n,), t, dtype=torch.int64),
        memory=torch.from_numpy(hidden),
        classes=[str(c) for c in range(10)],
        names=[f"clip-{i:05d}" for i in range(n)],
    )


def load_moving_digits(
    split: str,
    spec: MovingDigits,
    clips: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> VideoData:
    """One split of the set (default 3000 train, 500 val, 1000 test clips). Train and val
    clips use the training glyphs (seeded by ``seed``); test clips use the held-out glyphs
    and a fixed seed."""
    glyphs, classes = _glyphs(spec, "test" if split == "test" else "train", data_dir)
    split_seed = TEST_SEED if split == "test" else seed * 2 + (split == "val")
    return generate_moving_digits(spec, clips or DEFAULT_CLIPS[split], split_seed, glyphs, classes)
