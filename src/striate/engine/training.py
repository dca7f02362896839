"""One training run's phases: setup, restore, update, log, validate, checkpoint, stop.

:class:`Training` holds a run's state (step, history, best value, elapsed time) and does
each phase; :func:`striate.engine.loop.fit` strings the phases together. Reproducibility:
before every update the global RNG is seeded from (seed, step, rank) (:func:`seed_step`), so
augmentation and dropout depend only on the step.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
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
from striate.engine.config import lower_is_better, metric_name
from striate.engine.device import Precision, resolve_device
from striate.engine.distributed import unwrap
from striate.engine.evaluation import add_sums, evaluate, prepare_batch, reduce_sums
from striate.engine.interrupt import StopRequest
from striate.engine.optim import build_optimizer, set_lr
from striate.engine.plan import Plan, factor_fn, plan_for
from striate.errors import StriateError


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


def _unscaled(loss: torch.Tensor) -> torch.Tensor:
    """The loss-scaling function of a precision without a gradient scaler: the loss itself."""
    return loss


class Training:
    """Setup, restore, update, log, validate, checkpoint and stop: the phases :func:`fit`
    strings together. Holds the run's state (step, history, best value, elapsed time)."""

    def __init__(self, model, step, train, val, config, run, meta, dist, on_epoch_end, on_log):
        self.model, self.step_fn, self.val, self.config = model, step, val, config
        self.dist, self.on_epoch_end, self.on_log = dist, on_epoch_end, on_log
        # setup: device, precision, memory format, optimizer, schedule, logs
        self.device = resolve_device(config.device, dist.local_rank)
        self.precision = Precision(config.precision, self.device)
        # the gradient scaler, only where it does something (fp16); None: plain backward/step
        self.scaler = self.precision.scaler if self.precision.scaler.is_enabled() else None
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
        if self.writes:  # the settings hold: the run's folder and configuration now
            self.run.start()
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
        for its end). The batch's sums go into the log window.

        Nothing is done per step that the precision does not need: in fp32 and bf16 the
        gradient scaler (fp16 only) is not called, and fp32 enters no autocast context.
        """
        config, optimizer, scaler = self.config, self.optimizer, self.scaler
        seed_step(config.seed, self.global_step, self.dist.rank, self.device)
        factor = self.factor(self.global_step, self.elapsed())
        set_lr(optimizer, config.lr, factor, self.global_step)
        batch = prepare_batch(batch, self.device, self.channels_last)
        with self.precision.autocast():
            out = self.step_fn.train(trainable, batch)
        optimizer.zero_grad(set_to_none=True)
        if out.backward is not None:
            out.backward(_unscaled if scaler is None else scaler.scale)
        elif scaler is None:
            out.loss.backward()
        else:
            scaler.scale(out.loss).backward()
        if config.clip_grad_norm:
            if scaler is not None:
                scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad_norm)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        self.global_step += 1
        add_sums(self.window, out.sums)

    def elapsed(self) -> float:
        """Seconds of training so far, over every resume (what a time budget counts)."""
        return self.elapsed_before + time.perf_counter() - self.started

    def after_update(
        self, trainable: nn.Module, epoch: int, interrupt: StopRequest, bar: tqdm
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
    def check_stop(self, interrupt: StopRequest) -> None:
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
        # every rank stops at the same step (clocks and signals differ): a vote on the host
        stopping = bool(reasons or self.stop_reason)
        if self.dist.enabled and self.dist.any_rank(stopping) and not stopping:
            reasons.append("another process stopped")
        if reasons and self.stop_reason is None:
            self.stop_reason = reasons[-1] if interrupt.requested else reasons[0]

    def last_step(self) -> int | None:
        ends = [n for n in (self.plan.total_steps, self.config.max_steps) if n is not None]
        return min(ends) if ends else None
