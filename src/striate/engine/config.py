"""The training loop's settings (shared by every task) and what a finished run returns.

Every value is checked when the configuration is made, so a bad one is one line on stderr
before any data is loaded (the CLI turns the :class:`StriateError` into exit code 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from striate.engine.device import PRECISIONS
from striate.engine.optim import OPTIMIZERS, SCHEDULES
from striate.errors import StriateError


@dataclass
class EngineConfig:
    """Settings of the training loop (shared by every task)."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_steps: int = 0
    step_every_epochs: int = 30  # the "step" schedule: multiply by gamma every this many epochs
    gamma: float = 0.1
    clip_grad_norm: float | None = None
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None  # None: on for convolutional models
    device: str = "auto"
    seed: int = 0
    max_steps: int | None = None  # stop early (the schedule still spans all epochs)
    time_budget: float | None = None  # minutes of training; the schedule spans them
    log_every: int = 50
    checkpoint_every: int = 0  # steps between checkpoints; 0: at the end of each epoch only
    checkpoint_minutes: float | None = 10.0  # and at least this often (0 or None: no timer)
    keep_checkpoints: int = 2
    keep_best: str | None = None  # a validation metric ("val.loss"): keep its best checkpoint
    patience: int | None = None  # stop after this many validations without improvement
    progress: bool = True
    metrics_format: str = "jsonl"

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (math.isfinite(self.lr) and self.lr > 0, "learning rate must be positive"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight decay must be non-negative"),
            (self.warmup_steps >= 0, "warm-up steps must be non-negative"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.clip_grad_norm is None or self.clip_grad_norm > 0, "clip norm must be > 0"),
            (self.max_steps is None or self.max_steps >= 1, "max steps must be at least 1"),
            (
                self.time_budget is None
                or (math.isfinite(self.time_budget) and self.time_budget > 0),
                f"time budget must be a positive number of minutes, not {self.time_budget}",
            ),
            (self.checkpoint_every >= 0, "checkpoint interval must be non-negative"),
            (
                self.checkpoint_minutes is None
                or (math.isfinite(self.checkpoint_minutes) and self.checkpoint_minutes >= 0),
                "checkpoint minutes must be a non-negative number (0: no timer)",
            ),
            (self.keep_best is None or bool(metric_name(self.keep_best)), "name a metric to keep"),
            (self.patience is None or self.patience >= 1, "patience must be at least 1"),
            (self.log_every >= 1, "log interval must be at least 1"),
            (self.keep_checkpoints >= 1, "keep at least one checkpoint"),
            (self.metrics_format in ("jsonl", "csv"), "metrics format must be jsonl or csv"),
        ]
        for ok, message in checks:
            if not ok:
                raise StriateError(message)


@dataclass
class FitResult:
    """What :func:`~striate.engine.loop.fit` returns: the last step, every record it logged,
    the last validation metrics and the last checkpoint written."""

    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # last validation metrics
    checkpoint: Path | None = None


def metric_name(name: str) -> str:
    """``val.loss`` → ``loss``: the key of a validation metric named on the command line."""
    return name.removeprefix("val.").strip()


def lower_is_better(metric: str) -> bool:
    """Losses, bits per character, perplexity and error rates improve downwards."""
    return metric in ("loss", "bpc", "perplexity") or metric.endswith(("loss", "error"))
