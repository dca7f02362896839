"""The vocabulary of export: a :class:`Graph` (a module with tensor ports and a reference
path), a :class:`Port`, the :class:`TaskGraphs` of one task, and the small helpers every
task's graphs share (one state tensor, example ids and lengths)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Graph", "Port", "TaskGraphs"]


@dataclass(frozen=True)
class Port:
    """A graph input or output: its name, dtype and shape (a str names a dynamic size)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Graph:
    """One exportable graph (see the module docstring).

    ``example`` traces or exports it; ``probe`` has other dynamic sizes, to check that they
    stayed dynamic; ``reference(*inputs)`` gives the trained model's own outputs in the
    graph's layout (``log_softmax``: its first output is the log-softmax of the graph's,
    as a decoder step gives it to beam search); ``loops``: the graph has a time loop
    (scripted, not traced).
    """

    name: str
    module: nn.Module
    inputs: list[Port]
    outputs: list[Port]
    example: tuple[Tensor, ...]
    probe: tuple[Tensor, ...]
    reference: Callable[..., tuple[Tensor, ...]]
    loops: bool = False
    for_script: Callable[[], nn.Module] | None = None  # a scriptable variant, if it differs
    log_softmax: bool = False  # the reference gives log-probabilities of the first output

    def dynamic_dims(self) -> dict[str, dict[int, str]]:
        """``{port: {axis: dimension name}}`` for every dynamic size, inputs and outputs."""
        return {
            port.name: {i: d for i, d in enumerate(port.shape) if isinstance(d, str)}
            for port in (*self.inputs, *self.outputs)
            if any(isinstance(d, str) for d in port.shape)
        }


@dataclass
class TaskGraphs:
    """A task's graphs and what a consumer needs beside them (classes, vocabularies,
    preprocessing, the state layout), written to the export's JSON."""

    kind: str
    graphs: list[Graph]
    info: dict[str, Any] = field(default_factory=dict)


def state_port(parts: int, layers: int, batch: str, hidden: int, name: str = "state") -> Port:
    return Port(name, "float32", (parts, layers, batch, hidden))


def state_info(parts: int, layers: int, hidden: int, initial: str) -> dict[str, Any]:
    return {
        "shape": [parts, layers, "batch", hidden],
        "parts": ["h", "c"] if parts == 2 else ["h"],
        "initial": initial,
        "layout": "(S, L*D, B, H): S = 2 (h then C) for an LSTM, else 1",
    }


def stack_state(state: Any) -> Tensor:
    """A torch-layout state, h (L, B, H) or (h, c), as one (S, L, B, H) tensor."""
    return torch.stack(list(state)) if isinstance(state, tuple) else state.unsqueeze(0)


def unstack_state(state: Tensor, lstm: bool) -> Any:
    return (state[0], state[1]) if lstm else state[0]


def example_ids(batch: int, length: int, vocab: int, generator: torch.Generator) -> Tensor:
    low = 4 if vocab > 5 else 0  # past <pad> <unk> <bos> <eos> where there are words
    return torch.randint(low, vocab, (batch, length), generator=generator)


def example_lengths(batch: int, length: int) -> Tensor:
    """Unequal lengths, the first row full (so padding is exercised and T is reached)."""
    return torch.tensor([length] + [max(1, length - 1 - i % length) for i in range(batch - 1)])
