"""A trainable neocognitron (after Fukushima 1980, "Neocognitron: A Self-organizing Neural
Network Model for a Mechanism of Pattern Recognition Unaffected by Shift in Position",
Biological Cybernetics 36).

The lecture's history slide: a "sandwich" architecture (SCSCSC...) in which "simple cells:
modifiable parameters" and "complex cells: perform pooling". Here:

* S layer: a convolution with trainable filters over all maps of the previous layer,
  followed by Fukushima's rectifier phi(x) = max(x, 0), i.e. a ReLU. (Fukushima's S-cells
  also divide by an inhibitory V-cell signal; that shunting inhibition is left out.)
* C layer: fixed, parameter-free pooling -- a 3x3 average (or max) over overlapping
  windows with stride 2, like the C-cells' fixed excitatory connections that blur their
  S-plane -- followed by Fukushima's saturation psi(x) = x / (alpha + x), alpha = 1, x >= 0
  (``saturate=False`` skips it).
* After the last C layer, a linear classifier on the flattened maps.

Unlike the 1980 model, which learned its S-cells without a teacher, everything is trained
by backpropagation like the other networks of the zoo. With the default widths 16/32/64
and 5x5 filters, a 32 px RGB input goes 32 -> 16 -> 8 -> 4 px; 75,562 parameters for 10
classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.errors import StriateError
from striate.models._base import FeaturesThenHead
from striate.models._registry import register_model
from striate.nn.conv import conv_output_size, pool2d

__all__ = ["ComplexLayer", "Neocognitron"]


class ComplexLayer(nn.Module):
    """C layer: fixed 3x3/2 pooling (padding 1), then psi(x) = x / (1 + x); no parameters.

    (N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2)); expects non-negative input.
    """

    def __init__(self, pool: str = "avg", saturate: bool = True) -> None:
        super().__init__()
        self.pool = pool2d(pool, 3, 2, padding=1)
        self.saturate = saturate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)
        return y / (1.0 + y) if self.saturate else y


class Neocognitron(FeaturesThenHead):
    """S-C pairs (one per entry of ``widths``) and a linear classifier.

    ``forward_features``: (N, C, H, W) -> (N, widths[-1] * s * s) with s = H / 2**len(widths)
    (rounded up at every layer); ``forward_head``: -> (N, num_classes).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        widths: Sequence[int] = (16, 32, 64),
        kernel_size: int = 5,
        pool: str = "avg",
        saturate: bool = True,
    ) -> None:
        super().__init__()
        if not widths or kernel_size < 1 or kernel_size % 2 == 0:
            raise StriateError("neocognitron needs at least one width and an odd kernel size")
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for width in widths:
            layers += [
                nn.Conv2d(channels, int(width), kernel_size, padding=kernel_size // 2),  # S
                nn.ReLU(inplace=True),
                ComplexLayer(pool, saturate),  # C
            ]
            channels, side = int(width), conv_output_size(side, 3, 2, 1)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.num_features = channels * side * side
        self.head = nn.Linear(self.num_features, num_classes)


@register_model("neocognitron", image_size=32, min_image_size=16, tags=("cnn", "classic"))
def neocognitron(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    kernel_size: int = 5,
    pool: str = "avg",
    saturate: bool = True,
) -> Neocognitron:
    """Neocognitron (Fukushima 1980) as a trainable SCSCSC sandwich + linear classifier."""
    return Neocognitron(num_classes, in_channels, image_size, widths, kernel_size, pool, saturate)
