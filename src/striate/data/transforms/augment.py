"""Random data augmentation on whole batches, on the training device.

The lecture's "fake having more training data": random rotations, flips, shifts and
recolorings, plus the random resized crop. Every sample in a batch draws its own random
parameters, and the whole batch is transformed by batched tensor operations (kornia's
augmentation modules with ``same_on_batch=False``) -- there is no per-sample Python loop,
so it runs on the GPU as fast as the model's own layers.

A pipeline is chosen by name, as on the command line::

    rotate=15,shift=0.1,flip,crop=0.6,color=0.3

Choices, fixed here so that every run means the same thing:

* **Order.** Whatever order the names are given in, the operations run in one canonical
  order: crop, flips, then one affine warp (rotation and shift together, so the image is
  interpolated once, not twice), then the colour changes.
* **Padding.** Rotations and shifts fill the uncovered corners with zeros (black, as the
  images are still in [0, 1] before mean subtraction). This is the default of torchvision and
  kornia, and matches the black background of MNIST-like data; reflection padding would
  invent mirrored structure (a second half-digit, a duplicated edge) that is not in the data.
* **Grey images.** Saturation and hue are only defined for RGB. For images that do not have
  3 channels they are skipped: ``color`` then jitters only brightness and contrast, and a lone
  ``saturation`` or ``hue`` does nothing. :meth:`Augment.describe` says so.
* **Randomness** comes from torch's global generators (kornia draws the parameters on the
  CPU, or on the device the module was moved to with ``.to``), all of which
  ``torch.manual_seed(s)`` seeds, so seeding before a call reproduces it exactly.
* **Evaluation.** In ``eval()`` mode the module is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from striate.errors import StriateError

__all__ = ["DEFAULTS", "Augment", "build_augmentation", "parse_augment"]

# name -> default strength; the meaning of the strength is in _LIMITS and the module docstring.
DEFAULTS: dict[str, float] = {
    "rotate": 15.0,  # max rotation, degrees (uniform in [-d, d])
    "flip": 0.5,  # probability of a horizontal flip
    "vflip": 0.5,  # probability of a vertical flip
    "shift": 0.1,  # max shift, as a fraction of width / height
    "crop": 0.5,  # min area kept by the random resized crop (output has the input's size)
    "color": 0.3,  # brightness, contrast, saturation jitter; hue = strength / 6
    "brightness": 0.3,  # factor uniform in [max(0, 1 - s), 1 + s]
    "contrast": 0.3,
    "saturation": 0.3,
    "hue": 0.05,  # max hue shift, in turns of the colour wheel (0.5 = half a turn)
}

# name -> (lowest, highest, is the lowest allowed, text for the error message)
_LIMITS: dict[str, tuple[float, float, bool, str]] = {
    "rotate": (0.0, 180.0, True, "degrees in [0, 180]"),
    "flip": (0.0, 1.0, True, "a probability in [0, 1]"),
    "vflip": (0.0, 1.0, True, "a probability in [0, 1]"),
    "shift": (0.0, 1.0, True, "a fraction in [0, 1)"),
    "crop": (0.0, 1.0, False, "a minimum area scale in (0, 1]"),
    "color": (0.0, 3.0, True, "a strength in [0, 3]"),
    "brightness": (0.0, math.inf, True, "a strength >= 0"),
    "contrast": (0.0, math.inf, True, "a strength >= 0"),
    "saturation": (0.0, math.inf, True, "a strength >= 0"),
    "hue": (0.0, 0.5, True, "turns in [0, 0.5]"),
}

_ORDER = ("crop", "flip", "vflip", "rotate", "shift", "color", "brightness", "contrast")
_ORDER += ("saturation", "hue")
_VALID = ", ".join(DEFAULTS) + " (or none)"
_EXAMPLE = "e.g. 'rotate=15,shift=0.1,flip,color=0.3'"


def _check(name: str, value: float | None) -> tuple[str, float | None]:
    if name not in DEFAULTS:
        raise StriateError(f"unknown augmentation {name!r}; valid names: {_VALID}, {_EXAMPLE}")
    if value is None:
        return name, None
    value = float(value)
    low, high, low_ok, text = _LIMITS[name]
    too_low = value < low or (value == low and not low_ok)
    too_high = value > high or (value == high and name == "shift")
    if not math.isfinite(value) or too_low or too_high:
        raise StriateError(f"bad strength {value:g} for augmentation {name!r}: expected {text}")
    return name, value


def parse_augment(spec: str | Sequence[str] | None) -> list[tuple[str, float | None]]:
    """Parse an augmentation spec such as ``"rotate=15,shift=0.1,flip,color"``.

    Args:
        spec: comma-separated names, each with an optional ``=strength``; or a sequence of such
            strings (as from a repeated command-line option); ``None``, ``""`` or ``"none"``
            mean no augmentation. Names are case-insensitive.

    Returns:
        ``[(name, strength or None), ...]`` in the given order; ``None`` means the default
        strength (:data:`DEFAULTS`).

    Raises:
        StriateError: an unknown or repeated name, or a strength that is not a number or out of
            its range (negative, ``rotate`` > 180, ``shift`` >= 1, ``crop`` not in (0, 1], ...).
    """
    if spec is None:
        return []
    text = spec if isinstance(spec, str) else ",".join(str(s) for s in spec)
    items = [item.strip() for item in text.split(",")]
    items = [item for item in items if item]
    if [item.lower() for item in items] in ([], ["none"]):
        return []
    parsed: list[tuple[str, float | None]] = []
    for item in items:
        name, has_value, raw = item.partition("=")
        name = name.strip().lower()
        if name == "none":
            raise StriateError(f"augmentation 'none' cannot be combined with others: {text!r}")
        value: float | None = None
        if has_value:
            try:
                value = float(raw.strip())
            except ValueError:
                _check(name, None)  # an unknown name is the clearer error
                raise StriateError(
                    f"bad strength {raw.strip()!r} for augmentation {name!r}: expected a number"
                ) from None
        if any(name == seen for seen, _ in parsed):
            raise StriateError(f"augmentation {name!r} is given twice in {text!r}")
        parsed.append(_check(name, value))
    return parsed


class _ResizedCrop(nn.Module):
    """Random resized crop whose output has the input's size (kornia wants the size up front,
    so one kornia module is made per image size seen). Uses the batched resampling crop."""

    def __init__(self, min_scale: float) -> None:
        super().__init__()
        self.min_scale = min_scale
        self._by_size: dict[tuple[int, int], nn.Module] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = (int(images.shape[-2]), int(images.shape[-1]))
        op = self._by_size.get(size)
        if op is None:
            import kornia.augmentation as K  # imported on first use (see Augment._build)

            op = K.RandomResizedCrop(
                size,
                scale=(self.min_scale, 1.0),
                ratio=(3 / 4, 4 / 3),
                same_on_batch=False,
                align_corners=False,
                cropping_mode="resample",  # one batched warp; "slice" reads boxes per sample
                p=1.0,
            )
            self._by_size[size] = op
        return op(images)


class Augment(nn.Module):
    """A random augmentation pipeline applied to a whole batch at once.

    Args:
        spec: an augmentation spec (see :func:`parse_augment`) or its parsed list.
        channels: number of image channels; saturation and hue only apply when it is 3.

    ``forward(images)`` takes float images in [0, 1] of shape (B, C, H, W) (or (C, H, W)) on
    any device and returns a tensor of the same shape, dtype and device, values in [0, 1].
    Half-precision input is computed in float32 and cast back. In eval mode it returns the
    input unchanged.
    """

    def __init__(
        self, spec: str | Sequence[str] | Sequence[tuple[str, float | None]] | None, channels: int
    ) -> None:
        super().__init__()
        if isinstance(spec, str) or spec is None:
            ops = parse_augment(spec)
        else:
            spec = list(spec)
            if all(isinstance(s, str) for s in spec):
                ops = parse_augment(spec)  # type: ignore[arg-type]
            else:
                ops = [_check(str(name).lower(), value) for name, value in spec]  # type: ignore[misc]
        if channels < 1:
            raise StriateError(f"images need at least one channel, got {channels}")
        self.channels = int(channels)
        self.ops: list[tuple[str, float]] = [
            (name, DEFAULTS[name] if value is None else value) for name, value in ops
        ]
        self.ops.sort(key=lambda op: _ORDER.index(op[0]))
        self._parts: list[str] = []
        self.pipeline = nn.Sequential(*self._build())

    def _build(self) -> list[nn.Module]:
        if not self.ops:
            return []
        # imported here, not with this module: kornia takes about as long to import as the
        # rest of striate, and most runs (every one without --augment) never use it
        import kornia.augmentation as K

        strength = dict(self.ops)
        rgb = self.channels == 3
        not_rgb = f"{self.channels} channel{'s' if self.channels > 1 else ''}"
        modules: list[nn.Module] = []
        parts = self._parts
        if "crop" in strength:
            modules.append(_ResizedCrop(strength["crop"]))
            parts.append(f"crop area>={strength['crop']:g}")
        for name, flip in (("flip", K.RandomHorizontalFlip), ("vflip", K.RandomVerticalFlip)):
            if name in strength:
                modules.append(flip(p=strength[name], same_on_batch=False))
                parts.append(f"{name} p={strength[name]:g}")
        if "rotate" in strength or "shift" in strength:
            degrees = strength.get("rotate", 0.0)
            shift = strength.get("shift")
            modules.append(
                K.RandomAffine(
                    degrees=degrees,
                    translate=(shift, shift) if shift else None,
                    padding_mode="zeros",
                    align_corners=False,
                    same_on_batch=False,
                    p=1.0,
                )
            )
            if "rotate" in strength:
                parts.append(f"rotate ±{degrees:g}°")
            if shift is not None:
                parts.append(f"shift ±{shift:g}")
        if "color" in strength:
            s = strength["color"]
            sat, hue = (s, s / 6) if rgb else (0.0, 0.0)
            modules.append(K.ColorJitter(s, s, sat, hue, same_on_batch=False, p=1.0))
            extra = "" if rgb else f" (brightness/contrast only: {not_rgb})"
            parts.append(f"color {s:g}{extra}")
        for index, name in enumerate(("brightness", "contrast", "saturation", "hue")):
            if name not in strength:
                continue
            s = strength[name]
            if index >= 2 and not rgb:
                parts.append(f"{name} {s:g} (skipped: {not_rgb})")
                continue
            factors = [0.0, 0.0, 0.0, 0.0]
            factors[index] = s
            modules.append(K.ColorJitter(*factors, same_on_batch=False, p=1.0))
            parts.append(f"{name} {s:g}")
        return modules

    def describe(self) -> str:
        """A short human description, e.g. ``"flip p=0.5, rotate ±15°, shift ±0.1"``."""
        return ", ".join(self._parts) if self._parts else "none"

    def extra_repr(self) -> str:
        return self.describe()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training or len(self.pipeline) == 0:
            return images
        if not images.is_floating_point():
            raise StriateError(
                f"augmentation needs float images in [0, 1], got dtype {images.dtype}"
            )
        if images.dim() not in (3, 4) or images.shape[-3] != self.channels:
            raise StriateError(
                f"augmentation was built for ({self.channels}, H, W) images, "
                f"got shape {tuple(images.shape)}"
            )
        batch = images if images.dim() == 4 else images.unsqueeze(0)
        if batch.shape[0] == 0:
            return images
        dtype = images.dtype
        work = batch if dtype in (torch.float32, torch.float64) else batch.float()
        out = self.pipeline(work).clamp(0.0, 1.0).to(dtype)
        return out if images.dim() == 4 else out.squeeze(0)


def build_augmentation(
    spec: str | Sequence[str] | Sequence[tuple[str, float | None]] | None, channels: int
) -> Augment | None:
    """An :class:`Augment` for ``spec``, or ``None`` when the spec asks for no augmentation."""
    augment = Augment(spec, channels)
    return augment if augment.ops else None
