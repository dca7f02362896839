"""Step functions: what one batch means for a task.

The engine's loop is the same for every task; a step object says how a batch becomes a loss
(``train``), what is counted on held-out data (``evaluate``), and how the counts turn into
reported numbers (``summarize``). Counts are returned as tensors of *sums* so the loop can
add them up across batches and processes without synchronising on every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StepOutput:
    """What a training step hands back to the loop.

    ``backward`` is for steps whose gradient is not simply ``loss.backward()`` (truncated
    BPTT chains several graphs): the loop calls it with the precision's loss-scaling
    function instead, after clearing the old gradients.
    """

    loss: torch.Tensor  # the scalar that is reported (and backpropagated by default)
    sums: dict[str, torch.Tensor]  # detached running sums, including "count"
    backward: Callable[[Callable[[torch.Tensor], torch.Tensor]], None] | None = None


class Step(Protocol):
    """A task's step function. Stateful steps (recurrent models carrying their hidden state
    across batches) may also define ``reset()``, which the loop calls before every pass over
    a batch source: each training epoch (or the rest of one, after a resume) and each
    evaluation."""

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput: ...

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]: ...

    def summarize(self, sums: dict[str, float]) -> dict[str, float]: ...


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """How many targets are among the k highest logits (k is capped at the class count)."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices
    return (top == targets.unsqueeze(-1)).any(dim=-1).sum()


class ClassificationStep:
    """Image classification: uint8 images → [0, 1] floats → (augment) → model → cross-entropy.

    Args:
        augment: a module applied to the float batch during training only, or None.
        label_smoothing: the cross-entropy's label smoothing (Szegedy et al. 2016).
    """

    def __init__(self, augment: nn.Module | None = None, label_smoothing: float = 0.0) -> None:
        self.augment = augment
        self.label_smoothing = label_smoothing

    @staticmethod
    def to_float(images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255) if images.dtype == torch.uint8 else images

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        images, targets = batch
        x = self.to_float(images)
        if self.augment is not None:
            x = self.augment(x)
        logits = model(x)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            n = targets.numel()
            sums = {
                "loss": loss.detach() * n,
                "correct": (logits.argmax(-1) == targets).sum(),
                "count": torch.tensor(n, device=targets.device),
            }
        return StepOutput(loss, sums)

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        images, targets = batch
        logits = model(self.to_float(images)).float()
        return {
            "loss": F.cross_entropy(logits, targets, reduction="sum"),
            "correct": (logits.argmax(-1) == targets).sum(),
            "top5": topk_correct(logits, targets, 5),
            "count": torch.tensor(targets.numel(), device=targets.device),
        }

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1)
        out = {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}
        if "top5" in sums:
            out["top5"] = sums["top5"] / count
        return out
