"""Optimizers and learning-rate schedules, built from plain settings.

Weight decay applies to weight matrices and convolution kernels only: biases and the
scales/shifts of normalization layers (every parameter with fewer than two dimensions)
are not decayed. Schedules are pure functions of the step, so resuming only needs the step.
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
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise StriateError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


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


def build_schedule(
    optimizer: torch.optim.Optimizer, multiplier: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of every group: ``multiplier`` times the group's ``lr_scale``, 0 before
    its ``start_step`` (see :func:`parameter_groups`)."""

    def of(group: dict) -> Callable[[int], float]:
        scale, start = group.get("lr_scale", 1.0), group.get("start_step", 0)
        return lambda step: 0.0 if step < start else scale * multiplier(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [of(g) for g in optimizer.param_groups])
