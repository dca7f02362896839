"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS).

Five convolutional layers -- 96@11x11/4, 256@5x5, 384@3x3, 384@3x3, 256@3x3 -- with ReLU
(§3.1), local response normalization after the first two (§3.3), overlapping max pooling
with windows of 3 and stride 2 after the first, second and fifth (§3.4), then three fully
connected layers 4096-4096-num_classes with dropout 0.5 on the outputs of the first two
(§4.2).

Choices:

* No grouping by default: every convolution sees all channels of the previous layer, as is
  usual on one GPU; 62,378,344 parameters at 224 px and 1000 classes. ``groups=2`` splits
  conv2, conv4 and conv5 in two like the paper's two-GPU network: 60,965,224 parameters
  (the paper's "60 million").
* The first convolution uses padding 2, so a 224 px input gives the paper's 55x55 maps.
* LRN: the paper's k=2, n=5, alpha=1e-4, beta=0.75. PyTorch divides alpha by n, hence
  ``alpha=5e-4`` below. ``lrn=False`` drops it.
* Small images (``image_size < 100`` with ``small_input=None``, e.g. 32-64 px CIFAR-size):
  the 11x11/4 stem would leave almost nothing after three poolings, so the first
  convolution becomes 96@5x5 stride 1 (the 3/2 overlapping pools stay; 32 px -> 15 -> 7
  -> 3), and the hidden FC width defaults to 1024 instead of 4096 (``fc_width`` sets it).
* PyTorch's default initialization, not the paper's N(0, 0.01) with biases of 1.
* ``variant="torchvision"``: the one-GPU network of Krizhevsky 2014 ("One weird trick for
  parallelizing convolutional neural networks") that torchvision's ImageNet weights are
  for, layer for layer: 64@11x11/4, 192@5x5, 384, 256, 256 @3x3, no LRN, adaptive average
  pooling to 6x6 (so any side >= 63 px works), dropout *before* each of the first two FC
  layers; 61,100,840 parameters at 1000 classes. Its ``features``/``head`` indices equal
  torchvision's ``features``/``classifier`` ones.
"""

from __future__ import annotations

from torch import nn

from striate.errors import StriateError
from striate.models._base import FeaturesThenHead
from striate.models._registry import register_model
from striate.nn.conv import conv_output_size, pool2d

__all__ = ["AlexNet"]


def _lrn(enabled: bool) -> nn.Module:
    return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0) if enabled else nn.Identity()


class AlexNet(FeaturesThenHead):
    """AlexNet; ``forward_features``: (N, C, H, W) -> flattened conv maps (N, 256 * s * s),
    ``forward_head``: the three FC layers, (N, 256 * s * s) -> (N, num_classes); s = 6 at
    224 px (large stem) and 3 at 32 px (small stem)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: int = 224,
        small_input: bool | None = None,
        fc_width: int | None = None,
        lrn: bool = True,
        groups: int = 1,
        dropout: float = 0.5,
        variant: str = "paper",
    ) -> None:
        super().__init__()
        if variant == "torchvision":
            self._torchvision(num_classes, in_channels, image_size, fc_width or 4096, dropout)
            return
        if variant != "paper":
            raise StriateError(f"AlexNet variant must be 'paper' or 'torchvision', got {variant!r}")
        if groups not in (1, 2):
            raise StriateError(f"AlexNet groups must be 1 or 2, got {groups}")
        small = image_size < 100 if small_input is None else bool(small_input)
        kernel, stride, padding = (5, 1, 2) if small else (11, 4, 2)
        width = fc_width or (1024 if small else 4096)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel, stride, padding),
            nn.ReLU(inplace=True),
            _lrn(lrn),
            pool2d("max", 3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=groups),
            nn.ReLU(inplace=True),
            _lrn(lrn),
            pool2d("max", 3, 2),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            pool2d("max", 3, 2),
            nn.Flatten(),
        )
        side = conv_output_size(image_size, kernel, stride, padding)
        for _ in range(3):  # the 3x3 convolutions keep the size; the three pools shrink it
            side = conv_output_size(side, 3, 2)
        self.num_features = 256 * side * side
        self.head = nn.Sequential(
            nn.Linear(self.num_features, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )

    def _torchvision(
        self, num_classes: int, in_channels: int, image_size: int, width: int, dropout: float
    ) -> None:
        side = conv_output_size(image_size, 11, 4, 2)
        for kernel in (3, 3, 3):  # the three 3/2 max pools; the convolutions keep the size
            side = conv_output_size(side, kernel, 2)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, 4, 2),
            nn.ReLU(inplace=True),
            pool2d("max", 3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            pool2d("max", 3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            pool2d("max", 3, 2),
            nn.AdaptiveAvgPool2d(6),
            nn.Flatten(),
        )
        self.num_features = 256 * 6 * 6
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.num_features, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )


@register_model("alexnet", image_size=224, min_image_size=32, tags=("cnn", "classic", "imagenet"))
def alexnet(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 224,
    small_input: bool | None = None,
    fc_width: int | None = None,
    lrn: bool = True,
    groups: int = 1,
    dropout: float = 0.5,
    variant: str = "paper",
) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012): 5 conv + 3 FC layers, LRN, overlapping pooling."""
    return AlexNet(
        num_classes, in_channels, image_size, small_input, fc_width, lrn, groups, dropout, variant
    )
