"""Batches: seeded epoch order, resumable mid-epoch, equal shares under data parallelism."""

from __future__ import annotations

from itertools import chain

import pytest
import torch
from torch.utils.data import TensorDataset

from striate.data.batching import StreamBatches, TensorBatches
from striate.errors import StriateError

X = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 2, 2).contiguous()
Y = torch.arange(50)


def _labels(batches, epoch=0, start=0):
    return [y.tolist() for _, y in batches.epoch(epoch, start)]


def test_epoch_covers_each_sample_once_in_a_seeded_order():
    batches = TensorBatches(X, Y, 8, seed=1)
    first = _labels(batches)
    assert len(first) == len(batches) == 6  # 50 // 8, the rest dropped while training
    flat = list(chain(*first))
    assert len(set(flat)) == 48 and flat != sorted(flat)
    assert _labels(batches) == first and _labels(batches, epoch=1) != first
    assert _labels(TensorBatches(X, Y, 8, seed=2)) != first


def test_starting_mid_epoch_continues_the_same_sequence():
    batches = TensorBatches(X, Y, 8, seed=1)
    assert _labels(batches, 3, start=2) == _labels(batches, 3)[2:]


def test_evaluation_keeps_every_sample_in_order():
    batches = TensorBatches(X, Y, 8, shuffle=False)
    assert list(chain(*_labels(batches))) == list(range(50))


def test_ranks_split_each_global_batch():
    whole = _labels(TensorBatches(X, Y, 8, seed=4))
    parts = [_labels(TensorBatches(X, Y, 8, seed=4, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*parts, strict=True)] == whole
    with pytest.raises(StriateError, match="divisible"):
        TensorBatches(X, Y, 7, world_size=2)


def test_streamed_batches_equal_in_memory_batches():
    memory = TensorBatches(X, Y, 8, seed=3)
    stream = StreamBatches(TensorDataset(X, Y), 8, seed=3, workers=2)
    for (xa, ya), (xb, yb) in zip(memory.epoch(2, 1), stream.epoch(2, 1), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_nonsense_batch_sizes_are_refused():
    with pytest.raises(StriateError, match="at least 1"):
        TensorBatches(X, Y, 0)
    with pytest.raises(StriateError, match="larger than"):
        TensorBatches(X, Y, 64)
