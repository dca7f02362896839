"""Data-parallel training on PyTorch's own engine (``torchrun`` + DDP).

``torchrun --nproc_per_node=N -m striate train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`init_distributed` reads them, starts a process group (NCCL on CUDA, gloo on CPU), and
the engine wraps the model in ``DistributedDataParallel``. Each rank takes its share of every
global batch, gradients are averaged across ranks, and only rank 0 writes files.

On CUDA each process drives the GPU of its LOCAL_RANK, so a node needs at least as many
GPUs as processes; with fewer, every rank refuses in one line before joining the group
(rather than one rank dying on an invalid device ordinal while the others wait).
``--device cpu`` trains data-parallel on the CPU (gloo) whatever GPUs are present.

The ranks also vote at every step on whether to stop (a time budget or a signal reaches
each at its own moment). That vote is a host-side question, so it goes through a gloo group
on CPU tensors: under NCCL, a collective runs on the GPU stream and reading its answer on
the host would wait for every kernel queued before it, once per step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from striate.errors import StriateError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # the group for host-side votes; None: the default group, itself gloo (see _vote_group)
    vote_group: Any = field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank, voted on the host (no GPU synchronisation)."""
        if not self.enabled:
            return flag
        votes = torch.tensor([int(flag)])
        dist.all_reduce(votes, op=dist.ReduceOp.SUM, group=self.vote_group)
        return bool(votes.item())

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _uses_cuda(device: str | None) -> bool:
    """Whether a process asked for ``device`` ("auto", "cpu", "cuda:1", ...) trains on CUDA."""
    if device in (None, "auto"):
        return torch.cuda.is_available()
    try:
        return torch.device(device).type == "cuda"
    except RuntimeError:
        return False  # resolve_device reports the unknown name


def init_distributed(device: str | None = "auto") -> DistContext:
    """Join the process group that torchrun describes in the environment (if any).

    ``device`` is the run's ``--device``: on CUDA the process takes GPU ``LOCAL_RANK`` and
    the group uses NCCL; otherwise (``cpu``, or no GPU) gloo. More processes on this node
    (``LOCAL_WORLD_SIZE``) than CUDA GPUs raise :class:`StriateError` on every rank.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = _uses_cuda(device)
    if cuda:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1)))
        gpus = torch.cuda.device_count()
        if max(processes, local_rank + 1) > gpus:
            raise StriateError(
                f"torchrun started {processes} processes on this machine but it has {gpus} "
                f"CUDA GPU{'s' if gpus != 1 else ''}: start at most {gpus} "
                f"(--nproc_per_node={gpus}), or train on the CPU with --device cpu"
            )
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistContext(rank, world_size, local_rank, vote_group=_vote_group())


def _vote_group() -> Any:
    """The process group for votes on CPU tensors: the default group where it is gloo, else a
    gloo group of every rank beside it (every rank must call this, as any ``new_group``)."""
    if dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo")


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
