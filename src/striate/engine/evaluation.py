"""Batches onto the device, and a validation pass over a batch source.

Shared by the training loop (its log window sums metrics the same way) and by the apps'
``evaluate`` functions. A step's ``evaluate`` returns summed metrics as tensors, kept on the
device until :func:`reduce_sums` adds them over ranks and turns them into floats.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from striate.engine.device import Precision, move_to_device
from striate.engine.distributed import DistContext
from striate.engine.steps import Step


class Batches(Protocol):
    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Any: ...


def prepare_batch(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """A batch on the device (every tensor in it), images channels-last if asked."""
    batch = move_to_device(batch, device, non_blocking=device.type == "cuda")
    if not channels_last or not isinstance(batch, (tuple, list)) or not batch:
        return batch
    first = batch[0]
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        return batch
    return (first.contiguous(memory_format=torch.channels_last), *batch[1:])


def reset_for_evaluation(step: Step) -> None:
    """Before a validation pass: forget the step's evaluation state, never its training
    state (a validation mid-epoch must not restart TBPTT's carried hidden state)."""
    reset = getattr(step, "reset_eval", None) or getattr(step, "reset", None)
    if reset is not None:
        reset()


def add_sums(total: dict[str, torch.Tensor], sums: dict[str, torch.Tensor]) -> None:
    """Accumulate a step's summed metrics into ``total`` (on the device: no sync)."""
    for key, value in sums.items():
        total[key] = total[key] + value if key in total else value.detach().clone()


def reduce_sums(total: dict[str, torch.Tensor], dist: DistContext) -> dict[str, float]:
    """The sums over every rank, as plain floats (one host sync)."""
    if not total:
        return {}
    keys = sorted(total)
    packed = torch.stack([total[k].double() for k in keys])
    packed = dist.all_reduce_sum(packed).cpu()
    return {k: float(v) for k, v in zip(keys, packed, strict=True)}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    step: Step,
    batches: Batches,
    precision: Precision | None = None,
    dist: DistContext | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Run ``step.evaluate`` over every batch (each rank its share) and summarize."""
    dist = dist or DistContext()
    was_training = model.training
    model.eval()
    total: dict[str, torch.Tensor] = {}
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        reset_for_evaluation(step)
        for batch in batches.epoch(0):
            batch = prepare_batch(batch, device, channels_last)
            if precision is None:
                add_sums(total, step.evaluate(model, batch))
            else:
                with precision.autocast():
                    add_sums(total, step.evaluate(model, batch))
    finally:
        model.train(was_training)
    return step.summarize(reduce_sums(total, dist))
