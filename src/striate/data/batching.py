"""Batches: device-resident tensors for data that fits in memory, a DataLoader for the rest.

Both produce the same sequence for the same (seed, epoch): the epoch's order is a seeded
permutation, so a resumed run can start in the middle of an epoch (``start``) and see
exactly the batches an uninterrupted run would. Under data parallelism each of the
``world_size`` ranks takes its contiguous share of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from striate.errors import StriateError


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


class _Plan:
    """Which indices each rank reads for each batch of an epoch."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        if batch_size < 1:
            raise StriateError("batch size must be at least 1")
        if shuffle and batch_size % world_size:
            raise StriateError(
                f"batch size {batch_size} must be divisible by the {world_size} processes"
            )
        if drop_last and n < batch_size:
            raise StriateError(f"batch size {batch_size} is larger than the {n} training samples")
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        order = epoch_order(self.n, self.seed, epoch, self.shuffle)
        for b in range(start, len(self)):
            chunk = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.shuffle:  # training: equal contiguous shares keep gradients exact
                share = len(chunk) // self.world_size
                yield chunk[self.rank * share : (self.rank + 1) * share]
            else:  # evaluation: strided shares cover every sample once
                yield chunk[self.rank :: self.world_size]


class TensorBatches:
    """Batches drawn from tensors that live on the training device (no workers, no copies)."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        drop = shuffle if drop_last is None else drop_last
        self.plan = _Plan(len(inputs), batch_size, shuffle, drop, seed, rank, world_size)
        self.inputs = inputs.to(device)
        self.targets = targets.to(device)

    def __len__(self) -> int:
        return len(self.plan)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in self.plan.batches(epoch, start):
            index = index.to(self.inputs.device)
            yield self.inputs.index_select(0, index), self.targets.index_select(0, index)


class StreamBatches:
    """Batches streamed from a map-style Dataset by a DataLoader with worker processes."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        workers: int = 2,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        drop = shuffle if drop_last is None else drop_last
        self.plan = _Plan(len(dataset), batch_size, shuffle, drop, seed, rank, world_size)
        self.dataset, self.workers, self.device = dataset, workers, torch.device(device)

    def __len__(self) -> int:
        return len(self.plan)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=[b.tolist() for b in self.plan.batches(epoch, start)],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for inputs, targets in loader:
            yield (
                inputs.to(self.device, non_blocking=True),
                targets.to(self.device, non_blocking=True),
            )
