"""What every image source returns: raw uint8 pixels, integer labels and class names."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPLITS = ("train", "val", "test")


@dataclass
class ImageData:
    """A labelled image set held in memory.

    Attributes:
        images: uint8 tensor (N, C, H, W), pixel values 0..255, all images one square size.
        labels: int64 tensor (N,), values in ``range(len(classes))``.
        classes: class names, index = label.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have shape (N,)")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def subset(self, index: torch.Tensor) -> ImageData:
        return ImageData(self.images[index], self.labels[index], self.classes)
