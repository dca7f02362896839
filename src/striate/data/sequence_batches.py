"""Batches of variable-length sequences: padding, and bucketing by length.

:func:`pad_sequences` stacks id lists of different lengths into one ``(B, T)`` tensor plus
their lengths. :class:`SequenceBatches` serves any list of items (sentences, sentence pairs,
image-caption pairs) through a task's ``collate`` function. Like
:mod:`striate.data.batching`, the order of an epoch depends only on (seed, epoch), so a
resumed run sees the batches an uninterrupted one would, and under data parallelism each
rank takes its contiguous share of every global batch.

Bucketing: sequences of very different lengths in one batch waste most of its padding.
With ``bucket=True`` the epoch's (shuffled) order is cut into pools of ``pool_batches``
batches, each pool is sorted by length and cut into batches, and the batches are shuffled
again — every batch holds sequences of similar length while the order stays random.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from striate.data.batching import epoch_order
from striate.errors import StriateError


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack id sequences into a ``(B, T)`` int64 tensor padded with ``pad_id`` (T = the
    longest length) and return it with the ``(B,)`` int64 lengths."""
    if len(seqs) == 0:
        raise StriateError("cannot pad an empty list of sequences")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.int64)
    for row, seq in enumerate(seqs):
        if len(seq):
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.int64)
    return out, lengths


class SequenceBatches:
    """Batches of ``collate([items...])``, optionally bucketed by length.

    Args:
        items: anything indexable; ``collate`` turns a list of them into a tuple of tensors.
        lengths: one length per item (what bucketing sorts by).
        collate: list of items → tuple of tensors (e.g. padded ids and lengths).
        batch_size: items per global batch (divided among ``world_size`` ranks when
            shuffling; evaluation batches are shared out strided instead).
        shuffle: a seeded random order per epoch (training) or the items' order.
        bucket: group items of similar length (see the module docstring).
        seed, rank, world_size: the order's seed and this process's share.
        device: where the collated tensors go.
        drop_last: drop the one incomplete batch.
        pool_batches: how many batches a bucketing pool holds.
    """

    def __init__(
        self,
        items: Sequence[Any],
        lengths: Sequence[int],
        collate: Callable[[list[Any]], tuple[torch.Tensor, ...]],
        batch_size: int,
        *,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        pool_batches: int = 50,
    ) -> None:
        if len(items) != len(lengths):
            raise StriateError(f"{len(items)} items but {len(lengths)} lengths")
        if batch_size < 1:
            raise StriateError("batch size must be at least 1")
        if not items:
            raise StriateError("there are no sequences to batch")
        if shuffle and batch_size % world_size:
            raise StriateError(
                f"batch size {batch_size} must be divisible by the {world_size} processes"
            )
        if drop_last and len(items) < batch_size:
            raise StriateError(
                f"batch size {batch_size} is larger than the {len(items)} training samples"
            )
        self.items, self.collate = items, collate
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.int64)
        self.batch_size, self.shuffle, self.bucket = batch_size, shuffle, bucket
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.drop_last, self.pool_batches = drop_last, max(1, pool_batches)
        self.device = torch.device(device) if device is not None else None

    def __len__(self) -> int:
        full, rest = divmod(len(self.items), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def plan(self, epoch: int) -> list[torch.Tensor]:
        """The global batches of ``epoch`` as index tensors (the same on every rank)."""
        n, size = len(self.items), self.batch_size
        order = epoch_order(n, self.seed, epoch, self.shuffle)
        if self.bucket:
            pool = size * self.pool_batches
            parts = []
            for begin in range(0, n, pool):
                chunk = order[begin : begin + pool]
                parts.append(chunk[torch.sort(self.lengths[chunk], stable=True).indices])
            order = torch.cat(parts)
        batches = list(torch.split(order, size))
        if self.drop_last and len(batches[-1]) < size:
            batches.pop()
        if self.bucket and self.shuffle:  # pools are sorted: shuffle the batches again
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 7919)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return batches

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        for chunk in self.plan(epoch)[start:]:
            if self.shuffle:  # training: equal contiguous shares keep gradients exact
                share = len(chunk) // self.world_size
                chunk = chunk[self.rank * share : (self.rank + 1) * share]
            else:  # evaluation: strided shares cover every item once
                chunk = chunk[self.rank :: self.world_size]
            batch = self.collate([self.items[i] for i in chunk.tolist()])
            if self.device is not None:
                batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            yield batch
