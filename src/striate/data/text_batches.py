"""Contiguous stream batches for stateful recurrent training with truncated BPTT.

The token stream is cut into ``batch_size`` equal, contiguous pieces laid side by side
(row ``b`` of every batch reads piece ``b``), the classic char-rnn / "batchify" layout.
Each epoch walks the pieces left to right in windows of ``seq_len`` tokens, so row ``b`` of
window ``k + 1`` continues exactly where row ``b`` of window ``k`` stopped: a model may carry
its hidden state from one batch to the next (detached) within an epoch.

Variety between epochs: each epoch starts the pieces at an offset drawn from
``[0, slack]`` with a generator seeded by ``(seed, epoch)`` (``slack`` = tokens left over
after the pieces, at least ``seq_len - 1`` when the corpus is long enough), so truncation
points move from epoch to epoch while the number of windows stays fixed. Evaluation streams
use ``random_offset=False`` (offset 0 every epoch). Everything depends only on
``(seed, epoch)``, so ``epoch(e, start)`` resumes an interrupted epoch exactly.

Example:
    >>> stream = TokenStream(torch.arange(100), batch_size=2, seq_len=8, random_offset=False)
    >>> x, y = next(stream.epoch(0))
    >>> x[0, :4].tolist(), y[0, :4].tolist(), x[1, 0].item(), len(stream)
    ([0, 1, 2, 3], [1, 2, 3, 4], 41, 5)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from striate.errors import StriateError


def _offset_generator(seed: int, epoch: int) -> torch.Generator:
    # same seeding rule as striate.data.batching.epoch_order
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class TokenStream:
    """Windows ``(inputs, targets)`` of shape ``(batch_size, seq_len)`` over a token stream.

    ``targets`` are ``inputs`` shifted one token ahead. Same ``epoch(epoch, start)`` /
    ``__len__`` protocol as :class:`striate.data.batching.TensorBatches`; under data
    parallelism each of the ``world_size`` ranks takes its contiguous share of the rows.

    Args:
        ids: int64 token ids, shape ``(N,)``.
        batch_size: parallel streams (global, over all ranks).
        seq_len: window length: the truncated-BPTT horizon.
        device: where the ids live and the batches are made.
        seed: seeds the per-epoch start offset.
        random_offset: move the start offset each epoch (training); False keeps it at 0.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        batch_size: int,
        seq_len: int,
        device: torch.device | str = "cpu",
        *,
        seed: int = 0,
        random_offset: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if ids.dim() != 1:
            raise StriateError(
                f"token ids must be one stream of shape (N,), got {tuple(ids.shape)}"
            )
        if batch_size < 1 or seq_len < 1:
            raise StriateError(
                f"batch size and sequence length must be positive, got {batch_size} x {seq_len}"
            )
        if batch_size % world_size:
            raise StriateError(
                f"batch size {batch_size} must be divisible by the {world_size} processes"
            )
        n = len(ids)
        per_stream = n // batch_size
        if per_stream < seq_len + 1:
            raise StriateError(
                f"corpus of {n} characters is too short for batch {batch_size} x sequence "
                f"{seq_len} (it needs at least {batch_size * (seq_len + 1)}); use a smaller "
                "batch or sequence, or a longer text"
            )
        # windows per stream: leave room for offsets 0..seq_len-1 when the corpus allows it
        roomy = ((n - (seq_len - 1)) // batch_size - 1) // seq_len
        self.windows = roomy if roomy >= 1 else (per_stream - 1) // seq_len
        self.piece = self.windows * seq_len + 1  # tokens per stream, one extra for targets
        self.slack = n - batch_size * self.piece
        self.ids = ids.long().to(device)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.seed, self.random_offset = seed, random_offset
        share = batch_size // world_size
        self.rows = slice(rank * share, (rank + 1) * share)

    def __len__(self) -> int:
        return self.windows

    @property
    def tokens_per_epoch(self) -> int:
        """Target tokens predicted per epoch (all ranks together)."""
        return self.windows * self.seq_len * self.batch_size

    def offset(self, epoch: int) -> int:
        """Where piece 0 starts in the corpus during ``epoch``."""
        if not self.random_offset or self.slack == 0:
            return 0
        generator = _offset_generator(self.seed, epoch)
        return int(torch.randint(0, self.slack + 1, (1,), generator=generator).item())

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Windows ``start, start + 1, ...`` of ``epoch``, in order (resume with ``start``)."""
        first = self.offset(epoch)
        grid = self.ids[first : first + self.batch_size * self.piece]
        grid = grid.view(self.batch_size, self.piece)[self.rows]
        for k in range(start, self.windows):
            at = k * self.seq_len
            yield (
                grid[:, at : at + self.seq_len].contiguous(),
                grid[:, at + 1 : at + self.seq_len + 1].contiguous(),
            )
