"""The one training loop every task uses.

``fit`` knows batches, a step function, an optimizer and a schedule; it never knows which
model or task it trains. Reading order: configuration → :class:`_Training` (setup, restore,
one update, log, validate, checkpoint, stop) → :func:`fit`, the loop itself.

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

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from striate.artifacts.checkpoint import (
    Checkpoint,
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
from striate.engine.evaluation import (
    Batches,
    add_sums,
    evaluate,
    prepare_batch,
    reduce_sums,
)
from striate.engine.optim import (
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    set_lr,
)
from striate.engine.plan import Plan, factor_fn, plan_for
from striate.engine.steps import Step
from striate.errors import Interrupted, StriateError


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


def metric_name(name: str) -> str:
    """``val.loss`` → ``loss``: the key of a validation metric named on the command line."""
    return name.removeprefix("val.").strip()


def lower_is_better(metric: str) -> bool:
    """Losses, bits per character, perplexity and error rates improve downwards."""
    return metric in ("loss", "bpc", "perplexity") or metric.endswith(("loss", "error"))


def _reset(step: Step) -> None:
    reset = getattr(step, "reset", None)
    if reset is not None:
        reset()


# ---------------------------------------------------------------------------------------------
# Ctrl-C at a step boundary


class _StopRequest:
    """While active, the first Ctrl-C only asks the loop to stop at the next step boundary
    (so the update in flight completes with its step counter); a second one interrupts at
    once. Only the main thread can take signals; elsewhere Ctrl-C behaves as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------------------------
# one training run's phases


class _Training:
    """Setup, restore, update, log, validate, checkpoint and stop: the phases :func:`fit`
    strings together. Holds the run's state (step, history, best value, elapsed time)."""

    def __init__(self, model, step, train, val, config, run, meta, dist, on_epoch_end, on_log):
        self.model, self.step_fn, self.val, self.config = model, step, val, config
        self.dist, self.on_epoch_end, self.on_log = dist, on_epoch_end, on_log
        # setup: device, precision, memory format, optimizer, schedule, logs
        self.device = resolve_device(config.device, dist.local_rank)
        self.precision = Precision(config.precision, self.device)
        self.channels_last = (
            has_conv(model) if config.channels_last is None else config.channels_last
        )
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.steps_per_epoch = len(train)
        if self.steps_per_epoch < 1:
            raise StriateError("the training data gives no batch: nothing to train on")
        self.optimizer = build_optimizer(
            model,
            config.optimizer,
            config.lr,
            config.weight_decay,
            config.momentum,
            config.nesterov,
        )
        self.plan = plan_for(config, self.steps_per_epoch)
        self.factor = factor_fn(config, self.steps_per_epoch, self.plan)
        self.run, self.meta = run, dict(meta or {})
        self.writes = run is not None and dist.is_main
        self.log: MetricsLog | None = None
        self.global_step, self.elapsed_before = 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.final: dict[str, float] = {}
        self.val_step = -1  # the step of the last validation pass
        self.checkpoint: Path | None = None
        self.stop_reason: str | None = None
        self.window: dict[str, torch.Tensor] = {}  # summed metrics since the last record
        self.started = self.saved_at = self.window_start = time.perf_counter()

    # -- restore ------------------------------------------------------------------------------
    def restore(self, resume_from: Path | None) -> None:
        """Continue from a checkpoint: weights, optimizer, RNG, step, carried step state,
        elapsed time, best value; a different length becomes the plan's tail."""
        if resume_from is not None:
            ckpt = load_checkpoint(resume_from, with_optimizer=True)
            load_state_strict(self.model, ckpt.model_state, f"checkpoint {resume_from}")
            if ckpt.optimizer_state is None:
                raise StriateError(f"checkpoint {resume_from} holds no optimizer state to resume")
            self.optimizer.load_state_dict(ckpt.optimizer_state)
            set_rng_state(ckpt.meta["rng"])
            if ckpt.meta.get("grad_scaler"):  # fp16: the loss scale and its growth counter
                self.precision.scaler.load_state_dict(ckpt.meta["grad_scaler"])
            self.global_step = ckpt.meta["step"]
            self.history = list(ckpt.meta.get("history", []))
            self.elapsed_before = float(ckpt.meta.get("elapsed_s", 0.0))
            self.best = dict(ckpt.meta.get("best") or {})
            self.val_step = max(
                (r["step"] for r in self.history if r.get("phase") == "val"), default=-1
            )
            load_step_state = getattr(self.step_fn, "load_state_dict", None)
            if ckpt.step_state is not None and load_step_state is not None:
                load_step_state(ckpt.step_state)
            self._replan(ckpt)
        if self.writes:
            self.log = MetricsLog(
                self.run.path, self.config.metrics_format, resume_step=self.global_step
            )

    def _replan(self, ckpt: Checkpoint) -> None:
        saved = ckpt.meta.get("plan")
        if saved is None:  # a checkpoint from before plans were saved: the same plan
            return
        if (
            saved["total_steps"] == self.plan.total_steps
            and saved["budget_s"] == self.plan.budget_s
        ):
            self.plan.tail = saved.get("tail")  # the same end: continue exactly
        else:  # another length: the documented extension, a cosine tail from here
            step, elapsed = self.global_step, self.elapsed_before
            if self.plan.total_steps is not None and self.plan.total_steps <= step:
                epochs = self.plan.total_steps // self.steps_per_epoch
                raise StriateError(
                    f"run is at step {step}, past the end of epoch {epochs}; "
                    "give more --epochs to train further"
                )
            if self.plan.budget_s is not None and self.plan.budget_s <= elapsed:
                raise StriateError(
                    f"run has trained {elapsed / 60:.2f} minutes already; "
                    "give a larger --time-budget (the total) to train further"
                )
            old = factor_fn(self.config, self.steps_per_epoch, Plan(**saved))
            self.plan.tail = {
                "from_step": step,
                "from_s": elapsed,
                "factor": old(step, elapsed),
                "to_step": self.plan.total_steps,
                "to_s": self.plan.budget_s,
            }
        self.factor = factor_fn(self.config, self.steps_per_epoch, self.plan)

    # -- one update ---------------------------------------------------------------------------
    def update(self, trainable: nn.Module, batch: Any) -> None:
        """Forward, backward, clip, optimizer step and step counter: one unit (Ctrl-C waits
        for its end). The batch's sums go into the log window."""
        config, precision = self.config, self.precision
        seed_step(config.seed, self.global_step, self.dist.rank, self.device)
        factor = self.factor(self.global_step, self.elapsed())
        set_lr(self.optimizer, config.lr, factor, self.global_step)
        batch = prepare_batch(batch, self.device, self.channels_last)
        with precision.autocast():
            out = self.step_fn.train(trainable, batch)
        self.optimizer.zero_grad(set_to_none=True)
        if out.backward is None:
            precision.scaler.scale(out.loss).backward()
        else:
            out.backward(precision.scaler.scale)
        if config.clip_grad_norm:
            precision.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad_norm)
        precision.scaler.step(self.optimizer)
        precision.scaler.update()
        self.global_step += 1
        add_sums(self.window, out.sums)

    def elapsed(self) -> float:
        """Seconds of training so far, over every resume (what a time budget counts)."""
        return self.elapsed_before + time.perf_counter() - self.started

    def after_update(
        self, trainable: nn.Module, epoch: int, interrupt: _StopRequest, bar: tqdm
    ) -> None:
        """After each update: decide whether to stop, log the window, validate at the end of
        an epoch or of the run, and checkpoint when due."""
        bar.update(1)
        self.check_stop(interrupt)
        if self.global_step % self.config.log_every == 0 or self.stop_reason:
            shown = self.log_window(epoch)
            bar.set_postfix(
                {k: f"{shown[k]:.4f}" for k in ("loss", "accuracy", "bpc") if k in shown}
            )
        epoch_done = self.global_step % self.steps_per_epoch == 0
        if epoch_done or self.stop_reason:
            self.validate(trainable, epoch, lambda line: bar.write(line, file=sys.stderr))
        if epoch_done or self.stop_reason or self.checkpoint_due():
            self.save()

    @contextlib.contextmanager
    def progress_bar(self) -> Iterator[tqdm]:
        """The progress bar; the clocks (budget, log window, checkpoint timer) start here."""
        bar = tqdm(
            total=self.last_step(),
            initial=self.global_step,
            disable=not (self.config.progress and self.dist.is_main),
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
        )
        self.started = self.saved_at = self.window_start = time.perf_counter()
        try:
            yield bar
        finally:
            bar.close()

    @property
    def of_epochs(self) -> str:
        return f"/{self.config.epochs}" if self.plan.total_steps else ""

    # -- logging ------------------------------------------------------------------------------
    def record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.log:
            self.log.write(record)

    def log_window(self, epoch: int) -> dict[str, Any]:
        """Log the steps since the last record (their summed metrics, samples per second)."""
        sums = reduce_sums(self.window, self.dist)
        seconds = time.perf_counter() - self.window_start
        record = {
            "phase": "train",
            "epoch": epoch + 1,
            "step": self.global_step,
            **self.step_fn.summarize(sums),
            "lr": self.optimizer.param_groups[0]["lr"],
            "samples_per_s": sums.get("count", 0.0) / max(seconds, 1e-9),
        }
        if not math.isfinite(record["loss"]):  # checked here: no sync per step
            raise StriateError(
                f"loss became {record['loss']} by step {self.global_step}; "
                "lower the learning rate or enable gradient clipping"
            )
        self.record(record)
        if self.on_log and self.dist.is_main:
            self.on_log(record)
        self.window, self.window_start = {}, time.perf_counter()
        return record

    # -- validation, best checkpoint, early stopping ------------------------------------------
    def validate(self, trainable: nn.Module, epoch: int, say: Callable[[str], None]) -> None:
        """A validation pass: log it, let the task add to it (``on_epoch_end``), keep the
        best checkpoint and count patience."""
        if self.val is None or self.val_step == self.global_step:
            return
        self.final = evaluate(
            trainable, self.step_fn, self.val, self.precision, self.dist, self.channels_last
        )
        self.val_step = self.global_step
        if self.on_epoch_end and self.on_epoch_end(epoch + 1, self.final):
            self.stop_reason = self.stop_reason or "stopped by the task"
        self.record({"phase": "val", "epoch": epoch + 1, "step": self.global_step, **self.final})
        if self.dist.is_main:
            say(
                f"epoch {epoch + 1}: "
                + ", ".join(f"val {k} {v:.4f}" for k, v in self.final.items())
            )
        self._track_best()

    def _track_best(self) -> None:
        config = self.config
        if config.keep_best is None and config.patience is None:
            return
        name = metric_name(config.keep_best or "val.loss")
        if name not in self.final:
            raise StriateError(
                f"--keep-best metric val.{name} is not measured by this task; "
                f"use one of {', '.join('val.' + k for k in self.final)}"
            )
        value = self.final[name]
        old = self.best.get("value")
        sign = 1 if lower_is_better(name) else -1
        if old is None or sign * value < sign * old:
            self.best = {
                "metric": f"val.{name}",
                "value": value,
                "step": self.global_step,
                "bad": 0,
            }
            if config.keep_best is not None:
                self.save(best=True)
        else:
            self.best["bad"] = self.best.get("bad", 0) + 1
            if config.patience is not None and self.best["bad"] >= config.patience:
                self.stop_reason = self.stop_reason or (
                    f"val.{name} did not improve for {config.patience} validations"
                )

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, best: bool = False) -> None:
        """Write a checkpoint of everything an exact resume needs (rank 0 only)."""
        if not self.writes:
            return
        state = {
            **self.meta,
            "engine": asdict(self.config),
            "epoch": self.global_step // self.steps_per_epoch,
            "batch_in_epoch": self.global_step % self.steps_per_epoch,
            "plan": self.plan.to_json(),
            "elapsed_s": self.elapsed(),
            "rng": rng_state(),  # steps reseed from (seed, step); this covers the rest
            "grad_scaler": self.precision.scaler.state_dict(),  # {} unless fp16
            "history": self.history,
            "best": self.best,
        }
        # the carried state is per process: under torchrun only rank 0's would be saved, and
        # other ranks must not take it, so a multi-process run restarts it on resume
        step_state = None if self.dist.enabled else getattr(self.step_fn, "state_dict", None)
        path = save_checkpoint(
            self.run.checkpoints,
            self.global_step,
            unwrap(self.model).state_dict(),
            state,
            self.optimizer.state_dict(),
            keep=self.config.keep_checkpoints,
            step_state=step_state() if step_state is not None else None,
            best=best,
        )
        if not best:
            self.checkpoint, self.saved_at = path, time.perf_counter()

    def checkpoint_due(self) -> bool:
        every, minutes = self.config.checkpoint_every, self.config.checkpoint_minutes
        if every and self.global_step % every == 0:
            return True
        return bool(minutes) and time.perf_counter() - self.saved_at >= minutes * 60

    # -- stopping -----------------------------------------------------------------------------
    def check_stop(self, interrupt: _StopRequest) -> None:
        """Set ``stop_reason`` when the run should end after this step; all processes agree."""
        config, step = self.config, self.global_step
        reasons = []
        if self.plan.total_steps is not None and step >= self.plan.total_steps:
            reasons.append("planned end")
        if self.plan.budget_s is not None and self.elapsed() >= self.plan.budget_s:
            reasons.append(f"time budget of {self.plan.budget_s / 60:g} minutes")
        if config.max_steps is not None and step >= config.max_steps:
            reasons.append(f"--max-steps {config.max_steps}")
        if interrupt.requested:
            reasons.append("interrupted")
        if self.dist.enabled:  # every rank stops at the same step (clocks and signals differ)
            flag = torch.tensor([float(bool(reasons or self.stop_reason))], device=self.device)
            if float(self.dist.all_reduce_sum(flag)) > 0 and not (reasons or self.stop_reason):
                reasons.append("another process stopped")
        if reasons and self.stop_reason is None:
            self.stop_reason = reasons[-1] if interrupt.requested else reasons[0]

    def last_step(self) -> int | None:
        ends = [n for n in (self.plan.total_steps, self.config.max_steps) if n is not None]
        return min(ends) if ends else None


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
    t = _Training(
        model, step, train, val, config, run, meta, dist or DistContext(), on_epoch_end, on_log
    )
    t.restore(resume_from)
    trainable = t.dist.wrap(model, t.device)
    if config.compile:
        trainable = torch.compile(trainable)
    trainable.train()
    with _StopRequest() as interrupt, t.progress_bar() as bar:
        try:
            t.check_stop(interrupt)
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
