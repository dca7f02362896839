"""Long-range memory tasks of the LSTM literature, generated on the fly.

Both tasks make "remember an event at time 0 and use it at time t" measurable, with the
lag ``t`` as a parameter. They are batch sources with the same ``epoch(epoch, start)`` /
``__len__`` protocol as :class:`striate.data.batching.TensorBatches`: batch ``index`` of
``epoch`` is drawn from a generator seeded by ``(seed, split, epoch, index)``, so a run
resumed mid-epoch sees exactly the batches an uninterrupted one would, and
:meth:`validation` gives a fixed held-out set from a separate seed stream (the same batches
whatever the epoch).

* :class:`AddingProblem` (Hochreiter & Schmidhuber 1997; Le et al. 2015): add the two
  numbers marked in a long sequence. Regression; always answering 1.0 scores MSE 1/6.
* :class:`CopyTask` (Arjovsky et al. 2016): read a few symbols, wait ``lag`` steps, then
  write them back. Classification; guessing scores ``log(n_symbols)`` on the recall steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch

from striate.errors import StriateError

_SPLITS = {"train": 0, "val": 1}
_Task = TypeVar("_Task", bound="_GeneratedTask")


class _GeneratedTask:
    """Seeded batches made on demand: the shared ``epoch``/``__len__``/``validation`` part."""

    def __init__(
        self, batch_size: int, steps_per_epoch: int, seed: int, device: torch.device | str
    ) -> None:
        if batch_size < 1 or steps_per_epoch < 1:
            raise StriateError(
                f"batch size and steps per epoch must be positive, got {batch_size} and "
                f"{steps_per_epoch}"
            )
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.seed, self.device, self.split = seed, torch.device(device), "train"

    def __len__(self) -> int:
        return self.steps_per_epoch

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of batch ``index`` of ``epoch`` (validation ignores the epoch)."""
        epoch = 0 if self.split == "val" else epoch
        return np.random.default_rng([self.seed % (1 << 64), _SPLITS[self.split], epoch, index])

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self._make(self.rng(epoch, index))
        return torch.from_numpy(inputs).to(self.device), torch.from_numpy(targets).to(self.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start, start + 1, ...`` of ``epoch``."""
        for index in range(start, self.steps_per_epoch):
            yield self.batch(epoch, index)

    def validation(self: _Task, steps: int | None = None) -> _Task:
        """The same task on the validation seed stream: ``steps`` batches (default: as many
        as an epoch), identical for every epoch."""
        held_out = copy.copy(self)
        held_out.split = "val"
        if steps is not None:
            if steps < 1:
                raise StriateError(f"validation steps must be positive, got {steps}")
            held_out.steps_per_epoch = steps
        return held_out

    def _make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class AddingProblem(_GeneratedTask):
    """The adding problem: sequences of length ``T = lag``, inputs ``(B, T, 2)``.

    Channel 0 holds numbers drawn uniformly from [0, 1); channel 1 is a marker that is 1 at
    exactly two steps and 0 elsewhere. The first marker falls in the first 10% of the
    sequence (so it must be remembered for at least ``0.9 * lag`` steps), the second in the
    second half. The target ``(B, 1)`` is the sum of the two marked numbers.

    Baseline: the sum of two independent U(0, 1) numbers has mean 1 and variance
    1/12 + 1/12 = 1/6, so always predicting 1.0 gives MSE ≈ 0.167 (:attr:`baseline_mse`);
    a model has learnt the task only when its MSE falls far below that.
    """

    input_size = 2
    baseline_mse = 1.0 / 6.0

    def __init__(
        self,
        lag: int,
        batch_size: int,
        steps_per_epoch: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if lag < 2:
            raise StriateError(f"the adding problem needs a lag of at least 2, got {lag}")
        super().__init__(batch_size, steps_per_epoch, seed, device)
        self.lag = self.seq_len = lag

    def _make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        b, t = self.batch_size, self.lag
        values = rng.random((b, t), dtype=np.float32)
        first = rng.integers(0, max(1, t // 10), size=b)
        second = rng.integers(t // 2, t, size=b)
        rows = np.arange(b)
        markers = np.zeros((b, t), dtype=np.float32)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = np.stack([values, markers], axis=-1)
        targets = (values[rows, first] + values[rows, second])[:, None]
        return inputs, targets


class CopyTask(_GeneratedTask):
    """The copy (recall) task: token ids ``(B, T)`` in, token ids ``(B, T)`` out.

    Input: ``length`` random symbols (ids ``1..n_symbols``), then ``lag`` blanks (id 0), a
    delimiter (id ``n_symbols + 1``), then ``length`` more blanks, during which the model
    must write the symbols back in order: ``T = 2 * length + lag + 1`` and a symbol is
    recalled ``length + lag + 1`` steps after it was seen. Targets are blank (0) except on
    the last ``length`` steps (:attr:`recall`), which hold the symbols.

    Sizes: inputs take :attr:`n_inputs` = ``n_symbols + 2`` values, targets
    :attr:`n_classes` = ``n_symbols + 1``. Chance level: a memoryless model can at best
    output blanks where they are due and guess uniformly on the recall steps, which costs a
    cross-entropy of ``log(n_symbols)`` (2.08 nats for 8 symbols) per recall step,
    :attr:`chance_recall_loss`, or ``length * log(n_symbols) / T`` averaged over all steps,
    :attr:`chance_loss` (Arjovsky et al.'s baseline).
    """

    blank = 0

    def __init__(
        self,
        lag: int,
        n_symbols: int = 8,
        length: int = 10,
        batch_size: int = 32,
        steps_per_epoch: int = 100,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if lag < 0 or n_symbols < 2 or length < 1:
            raise StriateError(
                "the copy task needs lag >= 0, n_symbols >= 2 and length >= 1, got "
                f"{lag}, {n_symbols} and {length}"
            )
        super().__init__(batch_size, steps_per_epoch, seed, device)
        self.lag, self.n_symbols, self.length = lag, n_symbols, length
        self.delimiter = n_symbols + 1
        self.n_inputs, self.n_classes = n_symbols + 2, n_symbols + 1
        self.seq_len = 2 * length + lag + 1
        self.recall = slice(self.seq_len - length, self.seq_len)
        self.chance_recall_loss = math.log(n_symbols)
        self.chance_loss = length * math.log(n_symbols) / self.seq_len

    def _make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        b, n = self.batch_size, self.length
        symbols = rng.integers(1, self.n_symbols + 1, size=(b, n), dtype=np.int64)
        inputs = np.zeros((b, self.seq_len), dtype=np.int64)
        inputs[:, :n] = symbols
        inputs[:, n + self.lag] = self.delimiter
        targets = np.zeros((b, self.seq_len), dtype=np.int64)
        targets[:, self.recall] = symbols
        return inputs, targets
