"""Optimizer groups and schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.engine.optim import build_optimizer, lr_multiplier


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_takes_the_multi_tensor_update_and_makes_torchs_update(name):
    # on the CPU torch picks its one-tensor-at-a-time loop, about half of an SST-2 BiLSTM
    # step; the multi-tensor ("foreach") update is the same update (equal to rounding)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(24, 3))
    plain = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(24, 3))
    plain.load_state_dict(model.state_dict())
    ours = build_optimizer(model, name, lr=1e-2, weight_decay=1e-2)
    kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    decay = [p for p in plain.parameters() if p.dim() >= 2]
    rest = [p for p in plain.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 1e-2}, {"params": rest, "weight_decay": 0.0}]
    theirs = kind(groups, lr=1e-2)
    assert ours.defaults["foreach"] is True
    ids = torch.randint(0, 50, (16, 3))
    for _ in range(5):
        for net, opt in ((model, ours), (plain, theirs)):
            opt.zero_grad()
            net(ids).logsumexp(1).mean().backward()
            opt.step()
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # steps are 1e-2


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
