"""What travels with ImageNet weights: the 1,000 class names and the standard preprocessing.

The class names are torchvision's list (``imagenet_classes.txt`` beside this module, one
per line in class-index order, generated from torchvision's published metadata); the
preprocessing is the one every torchvision and most timm ImageNet weights were evaluated
with: resize the shorter side to 256, cut the centre 224x224, then standardize each channel
with the ImageNet training set's mean and standard deviation.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["IMAGENET_PREPROCESS", "imagenet_classes", "imagenet_normalization"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_PREPROCESS = {"resize": 256, "crop": 224}


@cache
def _classes() -> tuple[str, ...]:
    text = resources.files("striate.weights").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    assert len(names) == 1000, "imagenet_classes.txt must hold 1000 names"
    return names


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names, index i naming output i of an ImageNet head."""
    return list(_classes())


def imagenet_normalization() -> tuple[list[float], list[float]]:
    """(mean, std) per RGB channel of ImageNet's training images, on the [0, 1] scale."""
    return list(IMAGENET_MEAN), list(IMAGENET_STD)
