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

from striate.data.sources.video import PAD_LABEL


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
    """Classification: uint8 images → [0, 1] floats → (augment) → model → cross-entropy.

    Inputs that are not uint8 (word ids, float features) go to the model unchanged.

    Args:
        augment: a module applied to the float batch during training only, or None.
        label_smoothing: the cross-entropy's label smoothing (Szegedy et al. 2016).
        top_k: evaluation also counts the targets among the k best guesses (``top5``);
            None: not counted (it means nothing for two classes).
    """

    def __init__(
        self,
        augment: nn.Module | None = None,
        label_smoothing: float = 0.0,
        top_k: int | None = 5,
    ) -> None:
        self.augment = augment
        self.label_smoothing = label_smoothing
        self.top_k = top_k

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
            # torch.full fills on the device; torch.tensor(n, device=cuda) would copy from
            # host memory and wait for the GPU: a host synchronisation at every step
            sums = {
                "loss": loss.detach() * n,
                "correct": (logits.argmax(-1) == targets).sum(),
                "count": torch.full((), n, device=targets.device),
            }
        return StepOutput(loss, sums)

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        images, targets = batch
        logits = model(self.to_float(images)).float()
        sums = {
            "loss": F.cross_entropy(logits, targets, reduction="sum"),
            "correct": (logits.argmax(-1) == targets).sum(),
            "count": torch.full((), targets.numel(), device=targets.device),
        }
        if self.top_k:
            sums[f"top{self.top_k}"] = topk_correct(logits, targets, self.top_k)
        return sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1)
        out = {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}
        if self.top_k and f"top{self.top_k}" in sums:
            out[f"top{self.top_k}"] = sums[f"top{self.top_k}"] / count
        return out


def frame_counts(
    logits: torch.Tensor, labels: torch.Tensor, memory: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Sums over the valid frames: loss, correct, count, and the same on memory frames."""
    valid = labels != PAD_LABEL
    flat = logits.float().reshape(-1, logits.shape[-1])
    loss = F.cross_entropy(flat, labels.reshape(-1), ignore_index=PAD_LABEL, reduction="sum")
    hit = (logits.argmax(-1) == labels) & valid
    remembered = memory.bool() & valid
    return {
        "loss": loss,
        "correct": hit.sum(),
        "count": valid.sum(),
        "memory_correct": (hit & remembered).sum(),
        "memory_count": remembered.sum(),
    }


class FrameClassificationStep:
    """Video, a label per frame: cross-entropy over the valid frames of a batch of clips.

    A batch is ``(frames uint8 (B, T, C, S, S), targets int64 (B, T, 2))`` where
    ``targets[..., 0]`` is each frame's label (:data:`PAD_LABEL` past the clip's length)
    and ``targets[..., 1]`` flags memory frames. The loss is the mean over valid frames of
    -log softmax(y_t)[label_t].
    """

    @staticmethod
    def unpack(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        frames, targets = batch
        labels, memory = targets[..., 0], targets[..., 1]
        lengths = (labels != PAD_LABEL).sum(1)
        return frames.float().div_(255), labels, memory, lengths

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        frames, labels, memory, lengths = self.unpack(batch)
        logits = model(frames, lengths)
        sums = frame_counts(logits, labels, memory)
        loss = sums["loss"] / sums["count"].clamp_min(1)
        sums = {k: v.detach() for k, v in sums.items()}
        return StepOutput(loss, sums)

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        frames, labels, memory, lengths = self.unpack(batch)
        return frame_counts(model(frames, lengths), labels, memory)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1)
        out = {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}
        if sums.get("memory_count", 0) > 0:
            out["memory_accuracy"] = sums["memory_correct"] / sums["memory_count"]
        return out
