"""CIFAR-10 residual networks ResNet-20/32/44/56/110 (He, Zhang, Ren, Sun 2016, "Deep
Residual Learning for Image Recognition", CVPR, §4.2).

"The network inputs are 32x32 images ... a 3x3 convolution, then a stack of 6n layers with
3x3 convolutions on feature maps of sizes {32, 16, 8} respectively, with 2n layers for each
feature map size. The numbers of filters are {16, 32, 64}" -- i.e. a 3x3 conv-BN-ReLU stem,
three stages of n BasicBlocks, global average pooling and a linear classifier: 6n + 2
weighted layers. Shortcuts are option A (identity, zero-padded when the width doubles), so
all parameters sit in the convolutions, BN layers and the classifier.

Parameters at 10 classes (the paper's Table 6 in parentheses): ResNet-20 269,722 (0.27M),
ResNet-32 464,154 (0.46M), ResNet-44 658,586 (0.66M), ResNet-56 853,018 (0.85M),
ResNet-110 1,727,962 (1.7M). :func:`cifar_resnet` builds any 6n + 2 depth (e.g. 1202).
"""

from __future__ import annotations

from collections.abc import Callable

from striate.errors import StriateError
from striate.models._registry import register_model
from striate.models.resnet import ResNet
from striate.nn.conv import ConvBNAct
from striate.nn.residual import BasicBlock

__all__ = ["cifar_resnet"]


def cifar_resnet(
    depth: int,
    num_classes: int = 10,
    in_channels: int = 3,
    shortcut: str = "A",
    zero_init_residual: bool = True,
) -> ResNet:
    """A (6n + 2)-layer CIFAR ResNet: 16/32/64 channels, n BasicBlocks per stage.

    Shapes: (N, in_channels, H, W) -> features (N, 64) -> logits (N, num_classes); the
    feature maps are H, H/2 and H/4 in the three stages (any H >= 8 works).
    """
    if depth < 8 or (depth - 2) % 6:
        raise StriateError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    stem = ConvBNAct(in_channels, 16, 3)
    return ResNet(
        BasicBlock, (n, n, n), (16, 32, 64), stem, 16, num_classes, shortcut, zero_init_residual
    )


def _register(depth: int, millions: str) -> Callable[..., ResNet]:
    def builder(
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        shortcut: str = "A",
        zero_init_residual: bool = True,
    ) -> ResNet:
        del image_size  # global average pooling makes the network size-agnostic
        return cifar_resnet(depth, num_classes, in_channels, shortcut, zero_init_residual)

    n = (depth - 2) // 6
    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = (
        f"ResNet-{depth} for CIFAR (He et al. 2016 §4.2): 3 stages x {n} BasicBlocks, "
        f"16/32/64 channels, shortcut A; {millions} parameters."
    )
    return register_model(
        f"resnet{depth}", image_size=32, min_image_size=8, tags=("cnn", "resnet", "cifar")
    )(builder)


resnet20 = _register(20, "0.27M")
resnet32 = _register(32, "0.46M")
resnet44 = _register(44, "0.66M")
resnet56 = _register(56, "0.85M")
resnet110 = _register(110, "1.7M")
