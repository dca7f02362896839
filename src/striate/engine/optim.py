"""Optimizers and learning-rate schedules, built from plain settings.

Weight decay applies to weight matrices and convolution kernels only: biases and the
scales/shifts of normalization layers (every parameter with fewer than two dimensions)
are not decayed. Schedules are pure functions of the step (or, on a time budget, of the step
and the elapsed training time), so resuming only needs those two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from striate.errors import StriateError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay / no-decay groups; a model with ``lr_groups()`` (fine-tuning: a list of
    (parameters, lr_scale, start_step)) gets that split for each of its groups, the group's
    learning rate scaled by ``lr_scale`` and held at 0 before ``start_step``."""
    plan = model.lr_groups() if hasattr(model, "lr_groups") else [(model.parameters(), 1.0, 0)]
    groups = []
    for params, scale, start in plan:
        decay, no_decay = [], []
        for param in params:
            if param.requires_grad:
                (decay if param.dim() >= 2 else no_decay).append(param)
        for chosen, wd in ((decay, weight_decay), (no_decay, 0.0)):
            groups.append({"params": chosen, "weight_decay": wd, "lr_scale": scale})
            groups[-1]["start_step"] = start
    return groups


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = True,
) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over decay / no-decay parameter groups."""
    groups = parameter_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name in ("adam", "adamw"):
        return _adam(torch.optim.Adam if name == "adam" else torch.optim.AdamW, groups, lr)
    raise StriateError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def _adam(
    kind: type[torch.optim.Optimizer], groups: list[dict], lr: float
) -> torch.optim.Optimizer:
    """Adam / AdamW with torch's multi-tensor ("foreach") update on every device.

    The update is Kingma & Ba's either way; on the CPU torch would otherwise pick its
    one-tensor-at-a-time loop, which was about half of a training step of the SST-2 BiLSTM
    (its 1.8M-parameter word embedding is updated whole at every step): on a loaded 2-core
    machine, one thread, the update of its 2.6M parameters took 44 ms with ``foreach``
    against 107 ms. The fused kernel was no faster there, and it pairs parameters with their
    moments by raw memory: a channels-last convolution resumed with contiguous moments
    would be updated wrongly.
    """
    return kind(groups, lr=lr, foreach=True)


def lr_multiplier(
    name: str,
    total_steps: int,
    warmup_steps: int = 0,
    step_every: int = 1,
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """The factor applied to the base learning rate at each step.

    - constant: 1 (after warm-up);
    - step: gamma ** (step // step_every);
    - cosine: half a cosine from 1 down to 0 over the run;
    - onecycle: linear rise from 1/25 to 1 over the first 25 % of steps (or the warm-up if
      given), then half a cosine down to 1e-4 (Smith & Topin 2019, as a pure function).
    """
    if name not in SCHEDULES:
        raise StriateError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")
    total = max(1, total_steps)

    def warm(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0

    if name == "constant":
        return warm
    if name == "step":
        return lambda s: warm(s) * gamma ** (s // max(1, step_every))
    if name == "cosine":
        return lambda s: warm(s) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))

    rise = warmup_steps or max(1, int(0.25 * total))

    def onecycle(step: int) -> float:
        if step < rise:
            return 1 / 25 + (1 - 1 / 25) * step / rise
        progress = min(1.0, (step - rise) / max(1, total - rise))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))

    return onecycle


def budget_multiplier(
    name: str, warmup_steps: int = 0, step_every: int = 1, gamma: float = 0.1
) -> Callable[[int, float], float]:
    """The factor at (step, progress) for a run on a time budget, progress = elapsed / budget.

    The shapes are those of :func:`lr_multiplier` with the run's length measured in time:
    cosine falls from 1 to 0 over the budget; one-cycle rises over its first 25 % and falls
    over the rest; warm-up (in steps) multiplies every shape; the step schedule still counts
    steps.
    """
    if name not in SCHEDULES:
        raise StriateError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")

    def factor(step: int, progress: float) -> float:
        p = min(max(progress, 0.0), 1.0)
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if name == "constant":
            return warm
        if name == "step":
            return warm * gamma ** (step // max(1, step_every))
        if name == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * p))
        if p < 0.25:
            return warm * (1 / 25 + (1 - 1 / 25) * p / 0.25)
        return warm * (1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (p - 0.25) / 0.75)))

    return factor


def tail_multiplier(start_factor: float, progress: float) -> float:
    """An extension's schedule: half a cosine from the factor at the resume point to 0.

    ``progress`` is the extension's share done (steps or time). Used when a resumed run is
    given a different length (``--epochs``) or a further ``--time-budget``: the original
    schedule is left where the run stopped and the added part decays from there, with no jump.
    """
    p = min(max(progress, 0.0), 1.0)
    return start_factor * 0.5 * (1 + math.cos(math.pi * p))


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float, step: int) -> None:
    """Set every parameter group's learning rate to ``base_lr * factor`` times the group's
    ``lr_scale``, or 0 before the group's ``start_step`` (see :func:`parameter_groups`)."""
    for group in optimizer.param_groups:
        scale, start = group.get("lr_scale", 1.0), group.get("start_step", 0)
        group["lr"] = 0.0 if step < start else base_lr * factor * scale
