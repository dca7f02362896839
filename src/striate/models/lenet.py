"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE, §II.B).

C1: 6 maps, 5x5 convolution -> S2: 2x2 subsampling -> C3: 16 maps, 5x5 -> S4: 2x2
subsampling -> C5: 120 maps, 5x5 -> F6: 84 units -> output: num_classes. On 32 px input
C5's maps are 1x1; the paper calls C5 convolutional "because if LeNet-5 input were made
bigger with everything else kept constant, the feature map dimension would be larger than
1x1" -- which is what happens here for larger images (F6's input size is computed). For
inputs under 32 px (down to 28, e.g. MNIST) C1 is zero-padded so its maps are as large as
with 32 px: the paper's 28x28 digits were likewise centered in a 32x32 field.

Two registered variants:

* ``lenet5``: the modern reading -- ReLU and 2x2 max pooling, all C3 connections.
  61,706 parameters for 1 channel and 10 classes.
* ``lenet5_classic``: the paper's units -- the squashing function f(a) = 1.7159 tanh(2a/3)
  (Appendix A) after every layer up to F6; S2/S4 add the four inputs of a window,
  multiply by a trainable coefficient and add a trainable bias, per map; C3 connects to
  S2 maps by Table I (60 of the 96 map pairs), implemented as a fixed 0/1 mask on the
  weight. Differences: the output is a linear layer (84*10 + 10 weights) instead of the
  Euclidean RBF units with fixed codes, and the initialization is LeCun's fan-in rule
  (std 1/sqrt(fan-in), "Efficient BackProp", LeCun et al. 1998). Trainable parameters as
  in the paper: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 (60,850 with the
  linear output); ``count_parameters`` reports 61,750 since it also counts the 900
  permanently masked C3 weights, which never receive a gradient.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from striate.models._base import FeaturesThenHead
from striate.models._registry import register_model
from striate.nn.conv import conv_output_size, pool2d

__all__ = ["C3_TABLE", "LeNet5", "MaskedConv2d", "ScaledTanh", "Subsampling"]

# Table I of the paper: C3 map j reads the S2 maps C3_TABLE[j].
C3_TABLE: tuple[tuple[int, ...], ...] = (
    *((j % 6, (j + 1) % 6, (j + 2) % 6) for j in range(6)),
    *((j % 6, (j + 1) % 6, (j + 2) % 6, (j + 3) % 6) for j in range(6)),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a), A = 1.7159, S = 2/3, so that f(1) = 1 and f(-1) = -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4: coefficient * (sum of each 2x2 window) + bias, one coefficient/bias per map.

    The coefficient starts at 1/4 (a plain average). (N, C, H, W) -> (N, C, H // 2, W // 2).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, 2, divisor_override=1)
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class MaskedConv2d(nn.Conv2d):
    """A convolution whose map-to-map connections follow a fixed table.

    ``table[j]`` lists the input maps output map j sees; the weight is multiplied by a
    constant 0/1 mask of shape (out, in, 1, 1) in every forward pass, so absent connections
    stay exactly zero and get zero gradient.
    """

    def __init__(
        self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int
    ) -> None:
        super().__init__(in_channels, len(table), kernel_size)
        mask = torch.zeros(len(table), in_channels, 1, 1)
        for j, inputs in enumerate(table):
            mask[j, list(inputs)] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def _lecun_init(model: nn.Module) -> None:
    """Uniform weights with std 1/sqrt(fan-in) (fan-in counts only connected inputs)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach()
            if isinstance(module, MaskedConv2d):
                fan_in = module.mask.flatten(1).sum(1) * w[0, 0].numel()  # per output map
            else:
                fan_in = torch.full((w.shape[0],), float(w[0].numel()))
            bound = (3.0 / fan_in).sqrt().view(-1, *[1] * (w.dim() - 1))
            w.copy_((torch.rand_like(w) * 2 - 1) * bound)
            if isinstance(module, MaskedConv2d):
                w.mul_(module.mask)
            nn.init.zeros_(module.bias)


class LeNet5(FeaturesThenHead):
    """LeNet-5; ``classic`` selects the paper's units (see the module docstring).

    ``forward_features``: (N, C, H, W) -> flattened C5 maps (N, 120 * s * s), s = 1 for
    28-32 px; ``forward_head``: F6 and the output layer -> (N, num_classes).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 32,
        classic: bool = False,
    ) -> None:
        super().__init__()
        pad = max(0, math.ceil((32 - image_size) / 2))
        side = conv_output_size(image_size, 5, padding=pad)  # C1
        side = conv_output_size(conv_output_size(side, 2, 2), 5)  # S2, C3
        side = conv_output_size(conv_output_size(side, 2, 2), 5)  # S4, C5

        def act() -> nn.Module:
            return ScaledTanh() if classic else nn.ReLU(inplace=True)

        def subsample(channels: int) -> nn.Module:
            return nn.Sequential(Subsampling(channels), act()) if classic else pool2d("max", 2)

        c3 = MaskedConv2d(6, C3_TABLE, 5) if classic else nn.Conv2d(6, 16, 5)
        self.features = nn.Sequential(
            OrderedDict(
                c1=nn.Conv2d(in_channels, 6, 5, padding=pad),
                act1=act(),
                s2=subsample(6),
                c3=c3,
                act3=act(),
                s4=subsample(16),
                c5=nn.Conv2d(16, 120, 5),
                act5=act(),
                flatten=nn.Flatten(),
            )
        )
        self.num_features = 120 * side * side
        self.head = nn.Sequential(
            OrderedDict(
                f6=nn.Linear(self.num_features, 84), act6=act(), output=nn.Linear(84, num_classes)
            )
        )
        if classic:
            _lecun_init(self)


_TAGS = ("cnn", "classic", "lenet")


@register_model("lenet5", image_size=32, min_image_size=28, tags=_TAGS)
def lenet5(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling."""
    return LeNet5(num_classes, in_channels, image_size, classic=False)


@register_model("lenet5_classic", image_size=32, min_image_size=28, tags=_TAGS)
def lenet5_classic(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> LeNet5:
    """LeNet-5 as in LeCun et al. 1998: scaled tanh, trainable subsampling, C3 table."""
    return LeNet5(num_classes, in_channels, image_size, classic=True)
