"""Checkpoints: safetensors + JSON round trip, atomic replacement, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from striate.artifacts import checkpoint
from striate.artifacts.checkpoint import (
    best_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_state_strict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from striate.errors import StriateError


def _trained_pair() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(torch.randn(5, 4)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_restores_weights_and_optimizer(tmp_path):
    model, optimizer = _trained_pair()
    path = save_checkpoint(
        tmp_path, 3, model.state_dict(), {"classes": ["a", "b", "c"]}, optimizer.state_dict()
    )
    ckpt = load_checkpoint(path, with_optimizer=True)
    assert ckpt.meta["classes"] == ["a", "b", "c"] and ckpt.meta["step"] == 3
    fresh = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    load_state_strict(fresh, ckpt.model_state, "test")
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    fresh_opt.load_state_dict(ckpt.optimizer_state)
    # one more identical step on both gives identical weights
    x = torch.randn(5, 4)
    for m, o in ((model, optimizer), (fresh, fresh_opt)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_files_are_safetensors_and_json_only(tmp_path):
    model, optimizer = _trained_pair()
    path = save_checkpoint(tmp_path, 1, model.state_dict(), {}, optimizer.state_dict())
    names = sorted(p.name for p in path.iterdir())
    assert names == ["meta.json", "model.safetensors", "optimizer.safetensors"]
    json.loads((path / "meta.json").read_text())  # plain JSON


def test_keeps_only_the_newest_and_ignores_partial_writes(tmp_path):
    model, _ = _trained_pair()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model.state_dict(), {}, keep=2)
    (tmp_path / ".tmp-step-00000004-999").mkdir()  # a write that was killed half-way
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]


def test_saving_the_same_step_again_replaces_it_with_no_gap(tmp_path, monkeypatch):
    model, _ = _trained_pair()
    first = save_checkpoint(tmp_path, 5, model.state_dict(), {"v": 1})
    seen = []  # the complete checkpoints after every rename and removal of the second save
    for name in ("replace", "rename"):
        real = getattr(checkpoint.os, name)

        def spy(*args, real=real):
            real(*args)
            seen.append([p.name for p in list_checkpoints(tmp_path)])

        monkeypatch.setattr(checkpoint.os, name, spy)
    real_rmtree = checkpoint.shutil.rmtree

    def rmtree_spy(*args, **kwargs):
        real_rmtree(*args, **kwargs)
        seen.append([p.name for p in list_checkpoints(tmp_path)])

    monkeypatch.setattr(checkpoint.shutil, "rmtree", rmtree_spy)
    second = save_checkpoint(tmp_path, 5, model.state_dict(), {"v": 2})
    assert seen and all(seen), seen  # never a moment without a complete checkpoint
    assert list_checkpoints(tmp_path) == [second] and not first.exists()
    assert load_checkpoint(second).meta["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [second.name]


def test_best_checkpoint_is_kept_apart_from_the_latest_ones(tmp_path):
    model, _ = _trained_pair()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model.state_dict(), {}, keep=1)
        if step < 3:
            save_checkpoint(tmp_path, step, model.state_dict(), {}, best=True)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003"]
    assert best_checkpoint(tmp_path).name == "best-step-00000002"
    assert len(list(tmp_path.glob("best-*"))) == 1


def test_corrupt_or_mismatched_checkpoints_raise_one_line_errors(tmp_path):
    model, _ = _trained_pair()
    path = save_checkpoint(tmp_path, 1, model.state_dict(), {})
    other = nn.Linear(4, 3)
    with pytest.raises(StriateError, match="does not fit this model"):
        load_state_strict(other, load_checkpoint(path).model_state, "ckpt")
    (path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(StriateError, match="corrupt checkpoint weights"):
        load_checkpoint(path)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(StriateError, match="corrupt checkpoint metadata"):
        load_checkpoint(path)


def test_rng_state_survives_json(tmp_path):
    torch.manual_seed(5)
    torch.rand(3)
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, {"rng": rng_state()})
    expected = torch.rand(4)
    set_rng_state(load_checkpoint(path).meta["rng"])
    assert torch.equal(torch.rand(4), expected)


def test_runs_started_in_the_same_second_get_different_default_names(tmp_path, monkeypatch):
    from striate.artifacts import run_dir

    monkeypatch.setattr(run_dir.time, "strftime", lambda fmt: "20261204-120000")
    first = run_dir.new_run(None, "lenet5-digits", tmp_path)
    (first.path / "config.json").write_text("{}")
    second = run_dir.new_run(None, "lenet5-digits", tmp_path)
    assert first.path.name == "lenet5-digits-20261204-120000"
    assert second.path.name == "lenet5-digits-20261204-120000-2"
    with pytest.raises(StriateError, match="already exists"):  # a chosen name is never reused
        run_dir.new_run(first.path.name, "lenet5-digits", tmp_path)
