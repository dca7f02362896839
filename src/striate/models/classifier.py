"""An image classifier that carries its own input centering.

The lecture's input layer is "centered, i.e. subtract mean over training set". The
per-channel mean and standard deviation of the *training* images are computed once and
stored as buffers of this module, so they travel inside the checkpoint and are applied the
same way at training and at prediction time:

    x' = (x - mean_c) / std_c        for each channel c, x in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """``net`` preceded by per-channel standardization with stored training-set statistics."""

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
    ) -> None:
        super().__init__()
        self.net = net
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std.clamp_min(1e-6))

    def standardize(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) floats in [0, 1] → centred, unit-variance inputs."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.standardize(images))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) → (N, classes)
        return self.net(self.standardize(images))
