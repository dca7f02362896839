"""Optimizer groups and schedules."""

from __future__ import annotations

import math

import pytest
from torch import nn

from striate.engine.optim import build_optimizer, lr_multiplier


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-3)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() >= 2), name


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "onecycle"])
def test_schedules_start_and_end_sensibly(name):
    f = lr_multiplier(name, total_steps=100, step_every=30, gamma=0.1)
    values = [f(s) for s in range(101)]
    assert all(v > 0 and math.isfinite(v) for v in values[:-1])
    assert max(values) <= 1.0 + 1e-9
    if name == "step":
        assert (
            values[29] == 1.0 and math.isclose(values[30], 0.1) and math.isclose(values[60], 0.01)
        )
    if name == "cosine":
        assert values[0] == 1.0 and values[100] < 1e-9
    if name == "onecycle":
        assert values[0] < 0.05 and math.isclose(values[25], 1.0) and values[100] < 1e-3
