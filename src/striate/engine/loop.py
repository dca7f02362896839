"""The one training loop every task uses.

``fit`` knows batches, a step function, an optimizer and a schedule; it never knows which
model or task it trains. Reading order: :mod:`~striate.engine.config` (the settings) →
:mod:`~striate.engine.training` (setup, restore, one update, log, validate, checkpoint, stop)
→ :func:`fit`, the loop itself.

Reproducibility: before every step the global RNG is seeded from (seed, step, rank), so
augmentation and dropout depend only on the step; with the seeded epoch order of the
batches, the step function's carried state (TBPTT's hidden state) in the checkpoint and a
learning rate that is a pure function of (step, elapsed time), a run resumed from a
checkpoint continues exactly as if it had never stopped.

How a run ends: at its planned end (epochs, or ``time_budget`` minutes), at ``max_steps``,
by early stopping (``patience``, or the task's ``on_epoch_end``), or by Ctrl-C. Every end
but a second Ctrl-C runs a validation pass (unless one just ran) and saves a checkpoint.
Ctrl-C is taken at the next step boundary, so an update and its step counter are one unit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.artifacts.plots import plot_curves
from striate.artifacts.run_dir import RunDir
from striate.engine.config import EngineConfig, FitResult, lower_is_better, metric_name
from striate.engine.distributed import DistContext
from striate.engine.evaluation import Batches
from striate.engine.interrupt import StopRequest
from striate.engine.steps import Step
from striate.engine.training import Training, has_conv, seed_step
from striate.errors import Interrupted

__all__ = [
    "EngineConfig",
    "FitResult",
    "fit",
    "has_conv",
    "lower_is_better",
    "metric_name",
    "seed_step",
]


def _reset(step: Step) -> None:
    reset = getattr(step, "reset", None)
    if reset is not None:
        reset()


def fit(
    model: nn.Module,
    step: Step,
    train: Batches,
    val: Batches | None,
    config: EngineConfig,
    *,
    run: RunDir | None = None,
    meta: dict[str, Any] | None = None,
    resume_from: Path | None = None,
    dist: DistContext | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], bool | None] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``step`` on ``train`` batches, validating on ``val`` each epoch.

    Args:
        model: any module; it is moved to the configured device.
        step: the task's step function (see ``striate.engine.steps``); if it has
            ``state_dict``/``load_state_dict`` its carried state goes into checkpoints.
        train, val: batch sources with ``len()`` and ``epoch(epoch, start)``.
        config: the loop's settings.
        run: where metrics, curves and checkpoints go (rank 0 only); None writes nothing.
        meta: JSON-serializable facts stored in every checkpoint (model config, classes, ...).
        resume_from: a checkpoint directory to continue from exactly.
        dist: the data-parallel context (default: a single process).
        on_epoch_end: called with (epoch, validation metrics) after each validation pass; it
            may add metrics to the dict; returning True stops training there.
        on_log: called with each training record (every ``log_every`` steps), on rank 0.

    Raises:
        Interrupted: after Ctrl-C, once the final validation and checkpoint are done.
    """
    try:
        t = Training(
            model, step, train, val, config, run, meta, dist or DistContext(), on_epoch_end, on_log
        )
        t.restore(resume_from)
    except BaseException:
        if run is not None:  # refused before the first step: a new run leaves no folder
            run.discard_if_empty()
        raise
    trainable = t.dist.wrap(model, t.device)
    if config.compile:
        trainable = torch.compile(trainable)
    trainable.train()
    with StopRequest() as interrupt, t.progress_bar() as bar:
        try:
            t.check_stop(interrupt)
            if t.stop_reason and t.global_step == 0:  # no step fits (a budget too short):
                t.validate(trainable, 0, lambda line: bar.write(line, file=sys.stderr))
                t.save()  # still a whole run, measured and saved at step 0
            while t.stop_reason is None:  # one epoch (or the rest of one) per turn
                epoch, start = divmod(t.global_step, t.steps_per_epoch)
                bar.set_description(f"epoch {epoch + 1}{t.of_epochs}")
                if start == 0:
                    _reset(step)  # a new pass over the data: no carried state
                for batch in train.epoch(epoch, start):
                    t.update(trainable, batch)
                    t.after_update(trainable, epoch, interrupt, bar)
                    if t.stop_reason:
                        break
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, keep the last checkpoint
            where = f"; the last checkpoint is {t.checkpoint}" if t.checkpoint else ""
            raise Interrupted(f"interrupted at step {t.global_step}{where}") from None
    if t.log:
        t.log.close()
        plot_curves(t.history, run.path / "curves.png")
    if interrupt.requested:
        where = f"; checkpoint saved at {t.checkpoint}" if t.checkpoint else ""
        raise Interrupted(f"interrupted at step {t.global_step}{where}")
    return FitResult(step=t.global_step, history=t.history, final=t.final, checkpoint=t.checkpoint)
