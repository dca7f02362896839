"""The zoo's model contract, for models built as ``features`` followed by a ``head``."""

from __future__ import annotations

import torch
from torch import nn


class FeaturesThenHead(nn.Module):
    """A classifier whose subclasses set ``self.features`` (images → flat feature vectors)
    and ``self.head`` (feature vectors → logits); ``forward`` is the two in a row."""

    features: nn.Module
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_features)."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, num_features) -> logits (N, num_classes)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
