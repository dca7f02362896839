"""Residual blocks: y = relu(x + F(x)) (He, Zhang, Ren, Sun 2016, "Deep Residual Learning
for Image Recognition", CVPR).

The lecture: residual networks "make it easy to learn the identity function: Network with
all zero weights gives identity function", which "helps with vanishing/exploding
gradients". With ``zero_init_residual=True`` (the default) the last batch-norm scale (gamma)
of the residual branch F starts at zero, so F(x) = 0 and a block whose shape is kept
starts as exactly ``relu(x)`` -- the identity on the non-negative activations it receives
from a ReLU (the initialization of Goyal et al. 2017, "Accurate, Large Minibatch SGD").

Shortcuts when the shape changes (He et al. 2016, §3.3 and §4.2):

* ``"A"``: parameter free -- subsample by the stride and zero-pad the extra channels
  (the option the paper uses for its CIFAR-10 networks).
* ``"B"``: a 1x1 convolution + BN projection (the option of the ImageNet networks).

Either way the shortcut is the identity when the block keeps its input's shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import StriateError
from striate.nn.conv import ConvBNAct

__all__ = ["BasicBlock", "Bottleneck", "ZeroPadShortcut", "make_shortcut"]


class ZeroPadShortcut(nn.Module):
    """Shortcut option A: keep every ``stride``-th pixel, append all-zero channels.

    Shapes: (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)), which is the
    output size of a 3x3 convolution with padding 1 and the same stride.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise StriateError("shortcut A can only add channels, not remove them")
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # pads dim 1 at the end
        return x


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut path of a residual block: identity when the shape is kept, else A or B."""
    kind = kind.upper()
    if kind not in ("A", "B"):
        raise StriateError(f"unknown shortcut {kind!r}; use 'A' (zero padding) or 'B' (1x1 conv)")
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return ConvBNAct(in_channels, out_channels, 1, stride, padding=0, act=False)


class _ResidualBlock(nn.Module):
    """y = relu(x + F(x)); subclasses build ``self.residual`` (F) as ConvBNAct layers."""

    expansion = 1

    def __init__(
        self,
        residual: nn.Sequential,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: str,
        zero_init_residual: bool,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out_channels
        if zero_init_residual:
            nn.init.zeros_(self.last_bn.weight)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm that ends the residual branch (its gamma is zeroed at init)."""
        return self.residual[-1].bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x) + self.shortcut(x))


class BasicBlock(_ResidualBlock):
    """Two 3x3 conv-BN layers (ResNet-18/34 and the CIFAR ResNets), expansion 1.

    F(x) = BN(conv3x3(relu(BN(conv3x3_stride(x))))), y = relu(x + F(x)).
    Shapes: (N, in_channels, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        zero_init_residual: bool = True,
    ) -> None:
        out_channels = planes * self.expansion
        residual = nn.Sequential(
            ConvBNAct(in_channels, planes, 3, stride),
            ConvBNAct(planes, out_channels, 3, act=False),
        )
        super().__init__(residual, in_channels, out_channels, stride, shortcut, zero_init_residual)


class Bottleneck(_ResidualBlock):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4) conv-BN layers (ResNet-50/101/152).

    The stride sits on the 3x3 convolution rather than the first 1x1 as in He et al. 2016
    (the variant of Goyal et al. 2017, often called "ResNet v1.5"; same parameter count).
    Shapes: (N, in_channels, H, W) -> (N, 4 * planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        zero_init_residual: bool = True,
    ) -> None:
        out_channels = planes * self.expansion
        residual = nn.Sequential(
            ConvBNAct(in_channels, planes, 1, padding=0),
            ConvBNAct(planes, planes, 3, stride),
            ConvBNAct(planes, out_channels, 1, padding=0, act=False),
        )
        super().__init__(residual, in_channels, out_channels, stride, shortcut, zero_init_residual)
