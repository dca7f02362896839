"""Exact resume, and data-parallel training equal to single-process training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from striate.apps import image_classification as ic
from striate.artifacts.run_dir import open_run
from striate.cli.main import main
from striate.engine.distributed import init_distributed
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


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


@pytest.mark.cpu  # bit-identical: on CUDA, cuDNN's weight gradients may sum in any order
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
@pytest.mark.cpu
def test_torchrun_two_processes_equals_one_process(tmp_path):
    # DDP on the CPU (gloo), also where GPUs are present: two processes need no two GPUs
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
        "--device",
        "cpu",
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


def _torchrun_env(monkeypatch, gpus: int, processes: int = 2, rank: int = 1) -> None:
    """This process as rank ``rank`` of ``processes`` under torchrun, on a node with ``gpus``."""
    for name, value in {
        "WORLD_SIZE": processes,
        "RANK": rank,
        "LOCAL_RANK": rank,
        "LOCAL_WORLD_SIZE": processes,
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


@pytest.mark.parametrize("rank", [0, 1])
def test_more_processes_than_gpus_is_one_line_and_exit_2_on_every_rank(
    tmp_path, monkeypatch, capsys, rank
):
    _torchrun_env(monkeypatch, gpus=1, rank=rank)
    started = []
    monkeypatch.setattr(torch.cuda, "set_device", started.append)
    monkeypatch.setattr(torch.distributed, "init_process_group", started.append)
    args = ["train", "image", "--model", "lenet5", "--data", "digits", "--runs-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "2 processes" in err and "1 CUDA GPU" in err, err
    assert "--device cpu" in err and "--nproc_per_node=1" in err, err
    assert started == []  # refused before touching a GPU or joining the group
    assert not any(tmp_path.iterdir())


def test_device_cpu_under_torchrun_uses_gloo_whatever_gpus_are_present(monkeypatch):
    _torchrun_env(monkeypatch, gpus=1)
    joined, devices = [], []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda backend: joined.append(backend)
    )
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: joined[-1])
    context = init_distributed("cpu")
    assert (context.rank, context.world_size, context.local_rank) == (1, 2, 1)
    assert joined == ["gloo"] and devices == []
    assert context.vote_group is None  # the default group votes on CPU tensors already


def test_as_many_gpus_as_processes_uses_nccl_on_the_local_gpu(monkeypatch):
    _torchrun_env(monkeypatch, gpus=2)
    joined, devices = [], []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda backend: joined.append(backend)
    )
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: joined[-1])
    monkeypatch.setattr(torch.distributed, "new_group", lambda backend: f"{backend} group")
    context = init_distributed("auto")
    assert joined == ["nccl"] and devices == [1]
    assert context.vote_group == "gloo group"  # the stop vote stays off the GPU stream
    with pytest.raises(StriateError, match=r"2 processes .* 1 CUDA GPU"):
        _torchrun_env(monkeypatch, gpus=1)
        init_distributed("cuda")


_VOTE = """
import json, sys
import torch.distributed as dist
from striate.engine import distributed

dist.init_process_group("gloo")
dist.get_backend = lambda: "nccl"  # as under NCCL: the vote takes a gloo group of its own
context = distributed.init_distributed("cpu")  # joined already: only the vote group
rank = context.rank
votes = [context.any_rank(rank == 1), context.any_rank(False), context.any_rank(True)]
with open(f"{sys.argv[1]}/{rank}.json", "w") as out:
    json.dump({"votes": votes, "own_group": context.vote_group is not None}, out)
distributed.shutdown_distributed()
"""


@pytest.mark.slow
def test_ranks_vote_on_the_host_and_agree(tmp_path):
    script = tmp_path / "vote.py"
    script.write_text(_VOTE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run([*run, str(script), str(tmp_path)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):
        answer = json.loads((tmp_path / f"{rank}.json").read_text())
        assert answer == {"votes": [True, False, True], "own_group": True}
