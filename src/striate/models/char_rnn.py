"""A character-level language model: the lecture's many-to-many RNN for text synthesis.

Each character x_t enters as a one-hot vector (as in the lecture and karpathy's char-rnn), so
the first layer's input product W_xh x_t picks one column of W_xh; a stack of recurrent layers
(simple RNN, LSTM or GRU, see ``striate.nn.recurrent``) carries the state, and the output is

    y_t = W_hy h_t + b_y          (logits over the vocabulary for the next character)

For large vocabularies an ``embedding`` size replaces the one-hot input by a learned table.

Initialization: with a one-hot input, an LSTM's first-layer W_xh is an embedding table (its
columns are what each character adds to the gates) and starts as ``nn.Embedding`` does,
N(0, 1). With the recurrent layers' init, U(-1/sqrt(H), 1/sqrt(H)), a one-hot character
barely moves the gates: a 2x256 LSTM (batch 16 x 50, Adam 2e-3) stayed on the unigram
plateau for 40 steps (3.32 nats/char) where N(0, 1) reaches 2.58 and a plain script with
``nn.Embedding(64)`` + ``nn.LSTM`` 2.78 (``tests/apps/test_text_app.py``). Everything else
is torch's, uniform in (-1/sqrt(H), 1/sqrt(H)) for every recurrent weight and bias,
*including the LSTM's forget gate* (``forget_bias=None``). The forget-gate bias of 1
that :class:`striate.nn.recurrent.Recurrent` uses by default (Jozefowicz et al. 2015, for
long memory) slows a character model down: on tiny-shakespeare (1x256 LSTM, embedding 64,
batch 64 x 100, Adam 2e-3, 156 steps) validation reaches 2.066 nats/char with it against
1.997 without, where a plain ``torch.nn.LSTM`` script reaches 1.996.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from striate.errors import StriateError
from striate.nn.recurrent import Recurrent


class CharRNN(nn.Module):
    """model(inputs (B, T) int64, state) -> (logits (B, T, vocab), state)."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.0,
        embedding: int | None = None,
        impl: str = "auto",
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise StriateError("a character model needs a vocabulary of at least 2 characters")
        if not 0 <= dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        self.config: dict[str, Any] = {
            "vocab_size": vocab_size,
            "cell": cell,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "embedding": embedding,
            "forget_bias": forget_bias,
        }
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embedding) if embedding else None
        self.rnn = Recurrent(
            cell,
            embedding or vocab_size,
            hidden,
            num_layers=layers,
            dropout=dropout,
            impl=impl,
            forget_bias=forget_bias,
        )
        if self.embed is None and cell == "lstm":
            self._init_one_hot_inputs()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def _init_one_hot_inputs(self) -> None:
        """W_xh of the first layer ~ N(0, 1): it is an embedding table, initialized as one.

        A one-hot x_t makes W_xh x_t one column of W_xh, so those columns are a learned
        embedding of each character into the gates; ``nn.Embedding`` draws its table from
        N(0, 1). The recurrent layers' own init, U(-1/sqrt(H), 1/sqrt(H)), made for dense
        inputs of many unit-scale features, would leave a one-hot character almost no say in
        the gates (at H = 512, |W_xh x_t| < 0.045) and learning stalls for the first hundreds
        of steps. LSTM only: the other cells keep the recurrent init (measured for the LSTM;
        the lecture's GRU learned more slowly with it on a small corpus).
        """
        with torch.no_grad():
            for cell in self.rnn.cells[: self.rnn.num_directions]:  # layer 0's directions
                cell.weight_ih.normal_(0.0, 1.0)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, input size): one-hot vectors or embeddings."""
        if self.embed is not None:
            return self.embed(inputs)
        # scatter_ rather than F.one_hot: no range check on every sampled character
        onehot = inputs.new_zeros((*inputs.shape, self.vocab_size), dtype=self.head.weight.dtype)
        return onehot.scatter_(-1, inputs.unsqueeze(-1), 1.0)

    def forward(self, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        hidden, state = self.rnn(self.encode(inputs), state)  # (B, T, H)
        return self.head(self.drop(hidden)), state  # (B, T, vocab)

    def sampler(self, state: Any = None, temperature: float = 1.0) -> Callable[[int], torch.Tensor]:
        """For generating at batch 1: ``logits = sampler(token_id)``, with the weights and the
        state held between calls (see :meth:`striate.nn.recurrent.Recurrent.stepper`).

        The logits come divided by ``temperature`` (folded into W_hy and b_y once, not paid
        per character), in a buffer that the next call overwrites.
        """
        stepper = self.rnn.stepper(state)
        weight_t = self.head.weight.T / temperature
        bias = self.head.bias.unsqueeze(0) / temperature
        embed = None if self.embed is None else self.embed.weight
        logits = bias.new_empty(1, self.vocab_size)
        row = logits[0]

        def advance(token: int) -> torch.Tensor:
            if torch.is_grad_enabled():  # entering no_grad costs microseconds: only if needed
                with torch.no_grad():
                    return advance(token)
            # a one-hot input goes in as its index: the first layer reads one weight row
            hidden = stepper.advance(token if embed is None else embed[token : token + 1])
            torch.addmm(bias, hidden, weight_t, out=logits)  # y_t = W_hy h_t + b_y
            return row  # (vocab,) logits / temperature

        return advance

    @torch.inference_mode()
    def step(self, token: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """One character for each of B streams: (B,) ids -> (B, vocab) logits; no autograd."""
        hidden, state = self.rnn.step(self.encode(token), state)
        return self.head(hidden), state
