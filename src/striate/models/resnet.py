"""ImageNet residual networks ResNet-18/34/50 (He, Zhang, Ren, Sun 2016, "Deep Residual
Learning for Image Recognition", CVPR, Table 1) and the :class:`ResNet` trunk they share
with the CIFAR networks of :mod:`striate.models.resnet_cifar`.

Layout: stem -> four stages of residual blocks (64/128/256/512 planes; every stage after
the first halves the resolution in its first block) -> global average pooling -> linear.
Shortcut option B (1x1 projection where the shape changes), He initialization for the
convolutions (He et al. 2015, "Delving Deep into Rectifiers") and, by default, zero-init
of each block's last BN scale so every block starts as the identity (lecture: "Network
with all zero weights gives identity function").

Stems: the paper's 7x7/2 convolution + 3x3/2 max pooling divides the side by 4 before the
first stage, which wastes small images. With ``small_input=None`` (the default) a model
built for ``image_size < 64`` gets the CIFAR-style stem instead: one 3x3/1 convolution and
no max pooling; ``small_input=True``/``False`` forces either stem.

Parameters at 1000 classes: ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50
25,557,032 (the stem choice changes only the first convolution).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from striate.models._registry import register_model
from striate.nn.conv import ConvBNAct, pool2d
from striate.nn.residual import BasicBlock, Bottleneck

__all__ = ["ResNet", "imagenet_stem"]

Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """Stem -> stages of residual blocks -> global average pool -> linear classifier.

    ``stem`` maps (N, C_in, H, W) to (N, stem_channels, H', W'); stage ``i`` holds
    ``depths[i]`` blocks of ``widths[i]`` planes, its first block striding by 2 when i > 0.
    ``forward_features``: (N, C_in, H, W) -> (N, widths[-1] * block.expansion);
    ``forward_head``: (N, D) -> (N, num_classes).
    """

    def __init__(
        self,
        block: Block,
        depths: Sequence[int],
        widths: Sequence[int],
        stem: nn.Module,
        stem_channels: int,
        num_classes: int = 1000,
        shortcut: str = "B",
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        self.stem = stem
        stages = []
        channels = stem_channels
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(channels, width, stride, shortcut, zero_init_residual))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # BN layers keep their (possibly zeroed) gamma
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> pooled features (N, num_features)."""
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, num_features) -> logits (N, num_classes)."""
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def imagenet_stem(in_channels: int, channels: int = 64, small_input: bool = False) -> nn.Module:
    """The 7x7/2 conv + 3x3/2 max-pool stem (side / 4), or a 3x3/1 conv for small images."""
    if small_input:
        return ConvBNAct(in_channels, channels, 3)
    return nn.Sequential(
        ConvBNAct(in_channels, channels, 7, stride=2, padding=3), pool2d("max", 3, 2, padding=1)
    )


def _register(name: str, block: Block, depths: tuple[int, ...], doc: str) -> Callable[..., ResNet]:
    def builder(
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 224,
        small_input: bool | None = None,
        shortcut: str = "B",
        zero_init_residual: bool = True,
    ) -> ResNet:
        small = image_size < 64 if small_input is None else bool(small_input)
        stem = imagenet_stem(in_channels, 64, small)
        widths = (64, 128, 256, 512)
        return ResNet(block, depths, widths, stem, 64, num_classes, shortcut, zero_init_residual)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    tags = ("cnn", "resnet", "imagenet")
    return register_model(name, image_size=224, min_image_size=32, tags=tags)(builder)


resnet18 = _register(
    "resnet18",
    BasicBlock,
    (2, 2, 2, 2),
    "ResNet-18: BasicBlocks [2, 2, 2, 2] (He et al. 2016); 11.7M parameters at 1000 classes.",
)
resnet34 = _register(
    "resnet34",
    BasicBlock,
    (3, 4, 6, 3),
    "ResNet-34: BasicBlocks [3, 4, 6, 3] (He et al. 2016); 21.8M parameters at 1000 classes.",
)
resnet50 = _register(
    "resnet50",
    Bottleneck,
    (3, 4, 6, 3),
    "ResNet-50: Bottlenecks [3, 4, 6, 3] (He et al. 2016); 25.6M parameters at 1000 classes.",
)
