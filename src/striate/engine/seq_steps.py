"""Teacher forcing: the step function of models that generate a sequence token by token.

A batch is ``(*inputs, targets)`` where ``targets`` is ``(B, T + 1)`` token ids framed as
``<bos> w_1 … w_n <eos>`` and padded. The model reads the targets shifted right and predicts
them shifted left:

    logits = model(*inputs, targets[:, :-1]),    loss = CE(logits, targets[:, 1:]),

averaged over the non-padding target tokens (training maximises Σ_t log p(w_t | w_<t, x)).

Scheduled sampling (Bengio et al. 2015): with a :class:`TeacherForcingSchedule`, the step
calls ``model(*inputs, targets_in, teacher_forcing=ratio)`` and the model feeds its own
prediction instead of the true previous token with probability ``1 - ratio``. The ratio is a
function of the training step. The engine's loop does not pass the step number to a step,
so the step counts its own ``train`` calls in ``steps_done``; a task that resumes a run sets
``steps_done`` to the checkpoint's step (``TeacherForcedStep(..., start_step=...)``).
Evaluation always uses full teacher forcing, so validation loss and perplexity measure the
model, not the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from striate.engine.steps import StepOutput
from striate.errors import StriateError

SCHEDULE_KINDS = ("constant", "linear", "inverse_sigmoid", "exponential")


@dataclass(frozen=True)
class TeacherForcingSchedule:
    """The probability of feeding the true previous token, as a function of the step i.

    - ``constant``: ``start``.
    - ``linear``: from ``start`` down to ``end`` over ``steps`` steps, then ``end``.
    - ``inverse_sigmoid``: ``k / (k + exp(i / k))`` (Bengio et al. 2015), floored at ``end``.
    - ``exponential``: ``start · k**i`` with k < 1, floored at ``end``.
    """

    kind: str = "constant"
    start: float = 1.0
    end: float = 0.0
    steps: int = 10_000
    k: float = 1000.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise StriateError(
                f"teacher forcing schedule must be one of {', '.join(SCHEDULE_KINDS)}"
            )
        if not (0 <= self.end <= 1 and 0 <= self.start <= 1):
            raise StriateError("teacher forcing ratios must lie in [0, 1]")
        if self.steps < 1:
            raise StriateError("the teacher forcing schedule needs at least one step")
        if self.kind == "inverse_sigmoid" and self.k < 1:
            raise StriateError("the inverse sigmoid schedule needs k >= 1")
        if self.kind == "exponential" and not 0 < self.k < 1:
            raise StriateError("the exponential schedule needs 0 < k < 1")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            frac = min(step / self.steps, 1.0)
            return self.start + (self.end - self.start) * frac
        if self.kind == "inverse_sigmoid":
            value = self.k / (self.k + math.exp(min(step / self.k, 700.0)))
        else:
            value = self.start * self.k**step
        return max(self.end, value)


class TeacherForcedStep:
    """Cross-entropy of next-token prediction over the non-padding target tokens.

    Args:
        pad_id: the padding id of the targets (ignored by the loss).
        label_smoothing: the cross-entropy's label smoothing (training loss only; reported
            perplexities use the plain negative log-likelihood).
        teacher_forcing: None (the model is called without the keyword: always teacher
            forced) or a schedule of the ratio (passed as ``teacher_forcing=``).
        start_step: the value of ``steps_done`` at the start (a resumed run's step).
    """

    def __init__(
        self,
        pad_id: int = 0,
        label_smoothing: float = 0.0,
        teacher_forcing: TeacherForcingSchedule | None = None,
        start_step: int = 0,
    ) -> None:
        if not 0 <= label_smoothing < 1:
            raise StriateError("label smoothing must be in [0, 1)")
        self.pad_id = pad_id
        self.label_smoothing = label_smoothing
        self.teacher_forcing = teacher_forcing
        self.steps_done = start_step

    def ratio(self) -> float:
        """The teacher forcing ratio of the next training step (1.0 without a schedule)."""
        return 1.0 if self.teacher_forcing is None else self.teacher_forcing(self.steps_done)

    def _logits(self, model: nn.Module, batch: tuple[torch.Tensor, ...], ratio: float | None):
        *inputs, targets = batch
        targets_in, targets_out = targets[:, :-1], targets[:, 1:]
        if ratio is None:
            logits = model(*inputs, targets_in)
        else:
            logits = model(*inputs, targets_in, teacher_forcing=ratio)
        return logits.float().reshape(-1, logits.shape[-1]), targets_out.reshape(-1)

    def _sums(self, logits, targets, nll_sum) -> dict[str, torch.Tensor]:
        real = targets != self.pad_id
        return {
            "loss": nll_sum,
            "correct": ((logits.argmax(-1) == targets) & real).sum(),
            "count": real.sum(),  # target tokens: the loop's samples/s reads as tokens/s
        }

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        ratio = None if self.teacher_forcing is None else self.ratio()
        self.steps_done += 1
        logits, targets = self._logits(model, batch, ratio)
        tokens = (targets != self.pad_id).sum().clamp(min=1)
        loss_sum = F.cross_entropy(
            logits,
            targets,
            ignore_index=self.pad_id,
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        loss = loss_sum / tokens
        with torch.no_grad():
            nll = (
                F.cross_entropy(logits, targets, ignore_index=self.pad_id, reduction="sum")
                if self.label_smoothing
                else loss_sum.detach()
            )
            sums = self._sums(logits, targets, nll)
            if ratio is not None:
                sums["teacher_forcing"] = tokens.float() * ratio  # on the device: no sync
        return StepOutput(loss, sums)

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        logits, targets = self._logits(model, batch, None)
        nll = F.cross_entropy(logits, targets, ignore_index=self.pad_id, reduction="sum")
        return self._sums(logits, targets, nll)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        loss = sums["loss"] / count
        out = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "accuracy": sums.get("correct", 0.0) / count,
        }
        if "teacher_forcing" in sums:
            out["teacher_forcing"] = sums["teacher_forcing"] / count
        return out
