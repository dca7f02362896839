"""The char-RNN's step graph and the sentiment classifier's graph (see
:mod:`striate.export.graphs`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from striate.export.graphs.base import (
    Graph,
    Port,
    TaskGraphs,
    example_ids,
    example_lengths,
    stack_state,
    state_info,
    state_port,
    unstack_state,
)
from striate.export.recurrence import CellStep, LoopRecurrent, StackStep, state_parts
from striate.predict.base import Predictor

# ---------------------------------------------------------------------------------------------
# char-RNN


class CharStepGraph(nn.Module):
    """token (B,) int64, state -> (logits (B, V), state): one step of generation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed = model.embed
        self.stack = StackStep(model.rnn)
        self.head = model.head

    def forward(self, token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        first: CellStep = self.stack.first
        # a one-hot input's product W_ih x_t is one column of W_ih: read it by index
        g = first.project_index(token) if self.embed is None else first.project(self.embed(token))
        h, state = self.stack(g, state)
        return self.head(h), state  # y_t = W_hy h_t + b_y


def text_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model = p.model
    rnn = model.rnn
    parts, layers, hidden, vocab = state_parts(rnn), rnn.num_layers, rnn.hidden_size, len(p.vocab)
    g = torch.Generator().manual_seed(0)
    lstm = parts == 2

    def inputs(b: int) -> tuple[Tensor, Tensor]:
        return torch.randint(0, vocab, (b,), generator=g), torch.randn(
            parts, layers, b, hidden, generator=g
        )

    def reference(token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        logits, new = model.step(token, unstack_state(state, lstm))
        return logits, stack_state(new)

    graph = Graph(
        "step",
        CharStepGraph(model),
        [Port("token", "int64", ("batch",)), state_port(parts, layers, "batch", hidden)],
        [
            Port("logits", "float32", ("batch", vocab)),
            state_port(parts, layers, "batch", hidden, "next_state"),
        ],
        inputs(2),
        inputs(3),
        reference,
    )
    info = {
        "vocabulary": p.vocab.chars,
        "state": state_info(parts, layers, hidden, "zeros"),
        "cell": rnn.cell,
        "sampling": "next character ~ softmax(logits / temperature); feed it back as token",
    }
    return TaskGraphs(p.kind, [graph], info)


# ---------------------------------------------------------------------------------------------
# sentiment


class SentimentGraph(nn.Module):
    """ids (B, T) int64 right-padded, lengths (B,) -> logits (B, K)."""

    __constants__ = ("pooling", "bidirectional")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed, self.head = model.embed, model.head
        self.rnn = LoopRecurrent(model.rnn)
        self.pooling = model.pooling
        self.bidirectional = model.rnn.bidirectional

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        x = self.embed(ids)
        outputs, state = self.rnn(x, lengths, self.rnn.zero_state(x))
        if self.pooling == "last":
            h = state[0]  # (L*D, B, H): the state after each row's last word
            summary = torch.cat([h[-2], h[-1]], 1) if self.bidirectional else h[-1]
        else:
            valid = (
                torch.arange(ids.shape[1], device=ids.device) < lengths.unsqueeze(1)
            ).unsqueeze(2)
            if self.pooling == "mean":
                total = outputs.masked_fill(~valid, 0.0).sum(1)
                summary = total / lengths.unsqueeze(1).to(total.dtype)
            else:
                summary = outputs.masked_fill(~valid, float("-inf")).amax(1)
        return self.head(summary)


def sentiment_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model, vocab = p.model, len(p.vocab)
    g = torch.Generator().manual_seed(0)

    def inputs(b: int, t: int) -> tuple[Tensor, Tensor]:
        lengths = example_lengths(b, t)
        ids = example_ids(b, t, vocab, g)
        ids[torch.arange(t) >= lengths[:, None]] = model.pad_id
        return ids, lengths

    k = len(p.classes)
    graph = Graph(
        "model",
        SentimentGraph(model),
        [Port("ids", "int64", ("batch", "length")), Port("lengths", "int64", ("batch",))],
        [Port("logits", "float32", ("batch", k))],
        inputs(2, 5),
        inputs(3, 8),
        lambda ids, lengths: (model(ids, lengths),),
        loops=True,
    )
    info = {
        "classes": p.classes,
        "vocabulary": p.vocab.to_json(),
        "tokenization": p.meta.get("tokenization"),
        "padding": {"id": model.pad_id, "side": "right", "lengths": "count of real ids, >= 1"},
    }
    return TaskGraphs(p.kind, [graph], info)
