"""How long a run is, and its learning rate at every point of it.

A run lasts a number of steps (``epochs``) or of seconds (``time_budget``); the learning-rate
factor is a pure function of (step, elapsed seconds) for either, so a resumed run needs only
those two numbers to continue exactly. A resumed run given another length gets a *tail*: the
factor falls from its value at the resume point to 0 by half a cosine over the added part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from striate.engine.optim import budget_multiplier, lr_multiplier, tail_multiplier

if TYPE_CHECKING:
    from striate.engine.config import EngineConfig


@dataclass
class Plan:
    """The run's length (steps, or seconds of training on a budget) and its schedule.

    The learning-rate factor is a pure function of (step, elapsed seconds), so a resumed run
    only needs those two numbers. ``tail`` is set when a resumed run was given another
    length: from ``from_step`` (``from_s``) on, the factor falls by half a cosine from what
    it was there (``factor``) to 0 at the new end (see ``optim.tail_multiplier``).
    """

    total_steps: int | None  # None on a time budget
    budget_s: float | None
    tail: dict[str, float] | None = None

    def end(self) -> dict[str, float | None]:
        return {"total_steps": self.total_steps, "budget_s": self.budget_s}

    def to_json(self) -> dict[str, Any]:
        return {**self.end(), "tail": self.tail}


def plan_for(config: EngineConfig, steps_per_epoch: int) -> Plan:
    """The plan of a new run: its epochs in steps, or its time budget in seconds."""
    if config.time_budget is not None:
        return Plan(None, config.time_budget * 60.0)
    return Plan(config.epochs * steps_per_epoch, None)


def factor_fn(config: EngineConfig, steps_per_epoch: int, plan: Plan) -> Any:
    """f(step, elapsed_s) → the learning-rate factor of ``plan``."""
    step_every = config.step_every_epochs * steps_per_epoch
    if plan.budget_s is not None and plan.total_steps is None:
        shape = budget_multiplier(config.schedule, config.warmup_steps, step_every, config.gamma)
        base = lambda s, t: shape(s, t / plan.budget_s)  # noqa: E731
    else:
        by_step = lr_multiplier(
            config.schedule, plan.total_steps or 1, config.warmup_steps, step_every, config.gamma
        )
        base = lambda s, t: by_step(s)  # noqa: E731
    tail = plan.tail
    if tail is None:
        return base

    def with_tail(step: int, elapsed: float) -> float:
        if step < tail["from_step"]:
            return base(step, elapsed)
        if tail.get("to_s") is not None:
            done = (elapsed - tail["from_s"]) / max(tail["to_s"] - tail["from_s"], 1e-9)
        else:
            done = (step - tail["from_step"]) / max(tail["to_step"] - tail["from_step"], 1)
        return tail_multiplier(tail["factor"], done)

    return with_tail
