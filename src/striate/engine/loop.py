"""The one training loop every task uses.

``fit`` knows batches, a step function, an optimizer and a schedule; it never knows which
model or task it trains. Reading order: configuration → setup (device, precision, model,
optimizer, resume) → the loop (step, backward, clip, update, log, evaluate, checkpoint).

Reproducibility: before every step the global RNG is seeded from (seed, step, rank), so
augmentation and dropout depend only on the step; with the seeded epoch order of the
batches, a run resumed from a checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from striate.artifacts.checkpoint import (
    load_checkpoint,
    load_state_strict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from striate.artifacts.metrics_log import MetricsLog
from striate.artifacts.plots import plot_curves
from striate.artifacts.run_dir import RunDir
from striate.engine.device import PRECISIONS, Precision, resolve_device
from striate.engine.distributed import DistContext, unwrap
from striate.engine.optim import (
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_schedule,
    lr_multiplier,
)
from striate.engine.steps import Step
from striate.errors import Interrupted, StriateError


class Batches(Protocol):
    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Any: ...


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
    log_every: int = 50
    checkpoint_every: int = 0  # steps between checkpoints; 0: at the end of each epoch only
    keep_checkpoints: int = 2
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
            (self.log_every >= 1, "log interval must be at least 1"),
            (self.keep_checkpoints >= 1, "keep at least one checkpoint"),
            (self.metrics_format in ("jsonl", "csv"), "metrics format must be jsonl or csv"),
        ]
        for ok, message in checks:
            if not ok:
                raise StriateError(message)


@dataclass
class FitResult:
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # last validation metrics
    checkpoint: Path | None = None


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def seed_step(seed: int, step: int, rank: int = 0, device: torch.device | None = None) -> None:
    """Seed the RNGs that augmentation and dropout draw from, from (seed, step, rank) alone.

    The CPU generator is seeded directly: ``torch.manual_seed`` also queues CUDA/XPU seeding
    with a stack trace per call, a measurable cost per step on CPU.
    """
    value = (seed * 1_000_003 + step) * 64 + rank
    torch.default_generator.manual_seed(value)
    if device is not None and device.type == "cuda":
        torch.cuda.manual_seed(value)
    elif device is not None and device.type == "mps":
        torch.mps.manual_seed(value)


def _to_memory_format(batch: tuple, channels_last: bool) -> tuple:
    if not channels_last or batch[0].dim() != 4:
        return batch
    return (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])


def _reset(step: Step) -> None:
    reset = getattr(step, "reset", None)
    if reset is not None:
        reset()


def _add(total: dict[str, torch.Tensor], sums: dict[str, torch.Tensor]) -> None:
    for key, value in sums.items():
        total[key] = total[key] + value if key in total else value.detach().clone()


def _reduce(total: dict[str, torch.Tensor], dist: DistContext) -> dict[str, float]:
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
    try:
        _reset(step)
        for batch in batches.epoch(0):
            batch = _to_memory_format(batch, channels_last)
            if precision is None:
                _add(total, step.evaluate(model, batch))
            else:
                with precision.autocast():
                    _add(total, step.evaluate(model, batch))
    finally:
        model.train(was_training)
    return step.summarize(_reduce(total, dist))


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
        step: the task's step function (see ``striate.engine.steps``).
        train, val: batch sources with ``len()`` and ``epoch(epoch, start)``.
        config: the loop's settings.
        run: where metrics, curves and checkpoints go (rank 0 only); None writes nothing.
        meta: JSON-serializable facts stored in every checkpoint (model config, classes, ...).
        resume_from: a checkpoint directory to continue from exactly.
        dist: the data-parallel context (default: a single process).
        on_epoch_end: called with (epoch, validation metrics) after each epoch; returning
            True stops training there (early stopping), with a checkpoint.
        on_log: called with each training record (every ``log_every`` steps), on rank 0.
    """
    dist = dist or DistContext()
    device = resolve_device(config.device, dist.local_rank)
    precision = Precision(config.precision, device)
    channels_last = has_conv(model) if config.channels_last is None else config.channels_last
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    steps_per_epoch = len(train)
    total_steps = config.epochs * steps_per_epoch
    last_step = min(total_steps, config.max_steps or total_steps)
    optimizer = build_optimizer(
        model, config.optimizer, config.lr, config.weight_decay, config.momentum, config.nesterov
    )
    multiplier = lr_multiplier(
        config.schedule,
        total_steps,
        config.warmup_steps,
        step_every=config.step_every_epochs * steps_per_epoch,
        gamma=config.gamma,
    )
    schedule = build_schedule(optimizer, multiplier)

    global_step = 0
    history: list[dict[str, Any]] = []
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, with_optimizer=True)
        load_state_strict(model, ckpt.model_state, f"checkpoint {resume_from}")
        if ckpt.optimizer_state is None:
            raise StriateError(f"checkpoint {resume_from} holds no optimizer state to resume")
        optimizer.load_state_dict(ckpt.optimizer_state)
        schedule.load_state_dict(ckpt.meta["schedule"])
        set_rng_state(ckpt.meta["rng"])
        global_step = ckpt.meta["step"]
        history = list(ckpt.meta.get("history", []))

    meta = dict(meta or {})
    writes = run is not None and dist.is_main
    log = MetricsLog(run.path, config.metrics_format) if writes else None
    trainable = dist.wrap(model, device)
    if config.compile:
        trainable = torch.compile(trainable)
    trainable.train()

    def save() -> Path | None:
        if not writes:
            return None
        state = {
            **meta,
            "engine": asdict(config),
            "epoch": global_step // steps_per_epoch,
            "batch_in_epoch": global_step % steps_per_epoch,
            "schedule": schedule.state_dict(),
            "rng": rng_state(),  # steps reseed from (seed, step); this covers the rest
            "history": history,
        }
        return save_checkpoint(
            run.checkpoints,
            global_step,
            unwrap(model).state_dict(),
            state,
            optimizer.state_dict(),
            keep=config.keep_checkpoints,
        )

    checkpoint: Path | None = None
    final: dict[str, float] = {}
    window: dict[str, torch.Tensor] = {}
    window_start = time.perf_counter()
    bar = tqdm(
        total=last_step,
        initial=global_step,
        disable=not (config.progress and dist.is_main),
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        while global_step < last_step:
            epoch, start = divmod(global_step, steps_per_epoch)
            bar.set_description(f"epoch {epoch + 1}/{config.epochs}")
            _reset(step)
            for batch in train.epoch(epoch, start):
                seed_step(config.seed, global_step, dist.rank, device)
                batch = _to_memory_format(batch, channels_last)
                with precision.autocast():
                    out = step.train(trainable, batch)
                optimizer.zero_grad(set_to_none=True)
                if out.backward is None:
                    precision.scaler.scale(out.loss).backward()
                else:
                    out.backward(precision.scaler.scale)
                if config.clip_grad_norm:
                    precision.scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
                precision.scaler.step(optimizer)
                precision.scaler.update()
                schedule.step()
                global_step += 1
                bar.update(1)
                _add(window, out.sums)

                if global_step % config.log_every == 0 or global_step == last_step:
                    sums = _reduce(window, dist)
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "phase": "train",
                        "epoch": epoch + 1,
                        "step": global_step,
                        **step.summarize(sums),
                        "lr": optimizer.param_groups[0]["lr"],
                        "samples_per_s": sums.get("count", 0.0) / max(elapsed, 1e-9),
                    }
                    if not math.isfinite(record["loss"]):  # checked here: no sync per step
                        raise StriateError(
                            f"loss became {record['loss']} by step {global_step}; "
                            "lower the learning rate or enable gradient clipping"
                        )
                    history.append(record)
                    if log:
                        log.write(record)
                    shown = {
                        k: f"{record[k]:.4f}" for k in ("loss", "accuracy", "bpc") if k in record
                    }
                    bar.set_postfix(**shown, per_s=f"{record['samples_per_s']:.0f}")
                    if on_log and dist.is_main:
                        on_log(record)
                    window, window_start = {}, time.perf_counter()

                epoch_done = global_step % steps_per_epoch == 0
                if epoch_done and val is not None:
                    final = evaluate(trainable, step, val, precision, dist, channels_last)
                    record = {"phase": "val", "epoch": epoch + 1, "step": global_step, **final}
                    history.append(record)
                    if log:
                        log.write(record)
                    if dist.is_main:
                        summary = ", ".join(f"val {k} {v:.4f}" for k, v in final.items())
                        bar.write(f"epoch {epoch + 1}: {summary}", file=sys.stderr)
                    if on_epoch_end and on_epoch_end(epoch + 1, final):
                        last_step = global_step  # the caller asked to stop here
                every = config.checkpoint_every
                if epoch_done or global_step == last_step or (every and global_step % every == 0):
                    checkpoint = save() or checkpoint
                if global_step >= last_step:
                    break
    except KeyboardInterrupt:
        bar.close()
        checkpoint = save() or checkpoint
        if log:
            log.close()
        where = f"; checkpoint saved at {checkpoint}" if checkpoint else ""
        raise Interrupted(f"interrupted at step {global_step}{where}") from None
    bar.close()
    if log:
        log.close()
        plot_curves(history, run.path / "curves.png")
    return FitResult(step=global_step, history=history, final=final, checkpoint=checkpoint)
