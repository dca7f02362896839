"""A sentence classifier: the lecture's many-to-one RNN ("sequence of words → sentiment").

Each word id becomes a learned embedding vector x_t (initialised at random: no pretrained
vectors are needed), a stack of recurrent layers (``striate.nn.recurrent``: simple RNN,
LSTM, the lecture's GRU or torch's, optionally bidirectional) reads them,
h_t = f_W(h_{t-1}, x_t), and one vector summarises the sentence:

* ``last``: the state after the last real word, h_T (for a bidirectional layer, the forward
  state after the last word beside the backward state after the first word, each having
  read the whole sentence);
* ``mean`` / ``max``: the average / element-wise maximum of the top layer's outputs over the
  real words.

The summary goes through dropout into one linear layer, y = W_hy h + b_y, whose outputs are
the class logits. Padding never changes the result: the recurrent layer gets each
sentence's length (the count of non-padding ids unless given), stops there, and the
pooling ignores the padded steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from striate.errors import StriateError
from striate.nn.recurrent import CELLS, Recurrent

POOLINGS = ("last", "mean", "max")


class SentimentRNN(nn.Module):
    """model(ids (B, T) int64 right-padded with ``pad_id``, lengths (B,) or None)
    -> logits (B, num_classes).

    Args:
        vocab_size: words in the vocabulary (padding and unknown included).
        num_classes: classes to tell apart (at least 2).
        cell: ``rnn``, ``lstm``, ``gru`` or ``gru_cudnn``.
        embedding: size of the word vectors.
        hidden: H, the recurrent state size per direction.
        layers: stacked recurrent layers.
        dropout: on the word vectors, between recurrent layers and before the classifier.
        bidirectional: add a backward direction (the summary then has 2H features).
        pooling: ``last``, ``mean`` or ``max`` (see the module docstring).
        pad_id: the padding id; its embedding is fixed at zero.
        impl: the recurrent layer's implementation (``auto``, ``reference``, ``fast``).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "lstm",
        embedding: int = 128,
        hidden: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        pooling: str = "last",
        pad_id: int = 0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise StriateError(f"unknown recurrent cell {cell!r}; use one of {sorted(CELLS)}")
        if pooling not in POOLINGS:
            raise StriateError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        if vocab_size < 2 or num_classes < 2:
            raise StriateError("a sentence classifier needs at least 2 words and 2 classes")
        if embedding < 1 or hidden < 1 or layers < 1:
            raise StriateError("embedding size, hidden size and layers must be positive")
        if not 0 <= dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        if not 0 <= pad_id < vocab_size:
            raise StriateError(f"pad id {pad_id} is outside the vocabulary")
        self.config: dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "cell": cell,
            "embedding": embedding,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "bidirectional": bidirectional,
            "pooling": pooling,
            "pad_id": pad_id,
        }
        self.pooling, self.pad_id = pooling, pad_id
        self.embed = nn.Embedding(vocab_size, embedding, padding_idx=pad_id)
        self.rnn = Recurrent(
            cell, embedding, hidden, layers, dropout, bidirectional=bidirectional, impl=impl
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.rnn.num_directions, num_classes)

    def lengths_of(self, ids: Tensor) -> Tensor:
        """Each row's count of non-padding ids (padding must come after the words)."""
        return (ids != self.pad_id).sum(1)

    def features(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, T) ids -> (B, D*H) sentence summaries, before dropout and the classifier."""
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise StriateError(f"expected (B, T) integer word ids, got {tuple(ids.shape)}")
        if lengths is None:
            lengths = self.lengths_of(ids)
        lengths = lengths.to(ids.device)
        if bool((lengths < 1).any()):
            raise StriateError("every text needs at least one word")
        steps = int(lengths.max())
        ids = ids[:, :steps]  # drop columns that are padding in every row
        x = self.drop(self.embed(ids))
        full = bool((lengths == steps).all())  # no padding: skip the packing
        outputs, state = self.rnn(x, lengths=None if full else lengths)
        if self.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            if self.rnn.bidirectional:  # forward after the last word, backward after the first
                return torch.cat([h[-2], h[-1]], dim=1)
            return h[-1]
        valid = (torch.arange(steps, device=ids.device) < lengths[:, None]).unsqueeze(2)
        if self.pooling == "mean":
            total = outputs.masked_fill(~valid, 0.0).sum(1)
            return total / lengths[:, None].to(total.dtype)
        return outputs.masked_fill(~valid, float("-inf")).amax(1)

    def forward(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.drop(self.features(ids, lengths)))
