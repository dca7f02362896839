"""Exact resume, and data-parallel training equal to single-process training."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from striate.apps import image_classification as ic
from striate.artifacts.run_dir import open_run
from striate.engine.loop import EngineConfig


def _config(runs, name, **engine):
    settings = {"epochs": 2, "batch_size": 32, "lr": 0.05, "seed": 3, "progress": False}
    return ic.ImageTrainConfig(
        model="lenet5",
        data="digits",
        augment="rotate=10,shift=0.1",  # random per step: resume must restore it exactly
        name=name,
        runs_dir=str(runs),
        engine=EngineConfig(**{**settings, **engine}),
    )


def _weights(run_path):
    return load_file(str(open_run(run_path).latest_checkpoint() / "model.safetensors"))


def test_stop_and_resume_gives_identical_weights(tmp_path):
    whole = ic.train(_config(tmp_path, "whole"))
    steps = whole.fit.step
    k = steps // 2 + 3  # stop in the middle of an epoch
    part = ic.train(_config(tmp_path, "split", max_steps=k))
    assert part.fit.step == k
    resumed = ic.resume(part.run, tmp_path)
    assert resumed.fit.step == steps
    a, b = _weights(whole.run), _weights(resumed.run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_torchrun_two_processes_equals_one_process(tmp_path):
    common = [
        "train",
        "image",
        "--model",
        "lenet5",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--max-steps",
        "12",
        "--seed",
        "5",
        "--no-progress",
        "--runs-dir",
        str(tmp_path),
        "--precision",
        "fp32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "striate", *common, "--name", "single"]
    subprocess.run(run, check=True, env=env, capture_output=True)
    ddp = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "striate",
        *common,
        "--name",
        "ddp",
    ]
    done = subprocess.run(ddp, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    single, parallel = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    for key in single:
        torch.testing.assert_close(parallel[key], single[key], rtol=1e-4, atol=1e-5)
    # only rank 0 wrote: one run directory each, one set of checkpoints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]
