"""Fine-tuning a pretrained classifier on a few images of your own.

Three things, the recipe of fastai's ``fine_tune`` and Keras' transfer-learning guide:

1. The last layer is new (one output per class of your data, see
   :func:`striate.weights.pretrained.build_net`); everything before it -- the *body* --
   holds the pretrained weights.
2. For the first ``freeze_epochs`` epochs only the head learns: the body's learning rate is
   held at 0 (its weights do not move; its gradients are still computed and feed the
   optimizer's momentum, which is then warm when the body starts).
3. Then the body learns too, at ``body_lr_factor`` times the head's learning rate
   (discriminative learning rates: the body's features are already good, the head is new).

Batch normalization: the body's BN layers keep their pretrained running statistics during
the whole fine-tuning -- they normalize with them in training as in evaluation, and the
statistics are not updated -- while their scales and shifts train with the body. A few
hundred images in small batches give noisy statistics, and replacing statistics estimated
on a large data set with them is the usual way fine-tuning goes wrong (this is what Keras
does for a frozen base model, and what it recommends when unfreezing it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from striate.errors import StriateError
from striate.models.classifier import ImageClassifier

__all__ = ["FineTuneClassifier"]


class FineTuneClassifier(ImageClassifier):
    """An :class:`ImageClassifier` whose head learns first and whose body learns slower.

    Its state dict is an ImageClassifier's (same keys), so its checkpoints load as one.
    ``head`` is the name of the new last layer inside ``net`` (e.g. ``fc``, ``head.6``).
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
        head: str,
        freeze_steps: int,
        body_lr_factor: float,
    ) -> None:
        super().__init__(net, mean, std)
        if freeze_steps < 0:
            raise StriateError("freeze epochs must be non-negative")
        if not 0 <= body_lr_factor <= 1:
            raise StriateError("body learning-rate factor must be in [0, 1]")
        self.head_name = head
        self.freeze_steps = freeze_steps
        self.body_lr_factor = body_lr_factor

    def _split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        prefix = self.head_name + "."
        head, body = [], []
        for name, param in self.net.named_parameters():
            (head if name.startswith(prefix) else body).append(param)
        if not head:
            raise StriateError(f"the model has no layer {self.head_name!r} to fine-tune")
        return head, body

    def lr_groups(self) -> list[tuple[list[nn.Parameter], float, int]]:
        """(parameters, learning-rate scale, first step) for the head, then the body."""
        head, body = self._split()
        return [(head, 1.0, 0), (body, self.body_lr_factor, self.freeze_steps)]

    def body_norms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        prefix = self.head_name + "."
        for name, module in self.net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(prefix):
                yield module

    def train(self, mode: bool = True) -> FineTuneClassifier:
        """Training mode everywhere but the body's batch norms (pretrained statistics)."""
        super().train(mode)
        for norm in self.body_norms():
            norm.eval()
        return self
