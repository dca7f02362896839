"""Generating one step at a time: a recurrent layer advanced token by token at batch 1.

:meth:`striate.nn.recurrent.Recurrent.stepper` returns a :class:`Stepper`, which holds the
layer's inference weights (prepared once by the cells' ``inference_weights``) and its
per-layer states between calls, so that each call costs little more than streaming the
weights from memory once: ``h_t = stepper(x_t)``, where ``x_t`` is a dense input or the
index of a one-hot one. The equations are the cells' own (``striate.nn.cells``); LSTM layers
run them in place on preallocated buffers (:class:`LSTMStepBuffers`), the other cells
through their functional ``inference_step``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from striate.nn.cells import LSTMCell, LSTMState

if TYPE_CHECKING:  # the layer imports this module to build its steppers
    from striate.nn.recurrent import Recurrent, State

__all__ = ["LSTMStepBuffers", "Stepper"]


class LSTMStepBuffers:
    """:meth:`LSTMCell.inference_step` for one layer, in place, for generating at batch 1.

    The same equations on preallocated tensors: the gate pre-activations go straight into
    one buffer whose i, f, o, C~ views are made once, C_t is updated in place, and h_t is
    written into the second half of the ``[x_t, h]`` buffer that the next step's product
    reads, so no concatenation is needed. At batch 1 each avoided allocation or view is a
    measurable share of the time per character. ``__call__`` returns a view that the next
    call overwrites.
    """

    def __init__(self, state: LSTMState, w_t: Tensor, b: Tensor | None) -> None:
        h, c = state
        batch, hidden = h.shape
        self.inputs = w_t.shape[0] - hidden
        self.w_t, self.b, self.w_h = w_t, b, w_t[self.inputs :]
        self.xh = h.new_zeros(batch, self.inputs + hidden)  # [x_t, h_{t-1}]
        self.h = self.xh[:, self.inputs :]
        self.h.copy_(h)
        self.c = c.clone()
        self.gates = h.new_empty(batch, 4 * hidden)  # rows i, f, o | C~ (inference order)
        self.sigmoids, self.tanhs = self.gates[:, : 3 * hidden], self.gates[:, 3 * hidden :]
        self.i, self.f, self.o, self.c_tilde = self.gates.chunk(4, 1)
        self.tanh_c = torch.empty_like(self.c)
        self.one_hot_rows: list[Tensor] | None = None  # W_x[token] + b per token, made lazily

    def __call__(self, x_t: Tensor | int) -> Tensor:
        if isinstance(x_t, int):  # W · [x_t, h] + b = (W_x[token] + b) + W_h h
            if self.one_hot_rows is None:
                rows = self.w_t[: self.inputs]
                self.one_hot_rows = list((rows if self.b is None else rows + self.b).split(1))
            torch.addmm(self.one_hot_rows[x_t], self.h, self.w_h, out=self.gates)
        else:
            self.xh[:, : self.inputs].copy_(x_t)
            if self.b is None:
                torch.mm(self.xh, self.w_t, out=self.gates)
            else:
                torch.addmm(self.b, self.xh, self.w_t, out=self.gates)
        self.sigmoids.sigmoid_()  # i_t, f_t, o_t
        self.tanhs.tanh_()  # C~_t
        self.c.mul_(self.f).addcmul_(self.i, self.c_tilde)  # C_t = f_t * C_{t-1} + i_t * C~_t
        torch.tanh(self.c, out=self.tanh_c)
        return torch.mul(self.tanh_c, self.o, out=self.h)  # h_t = o_t * tanh(C_t)

    @property
    def state(self) -> LSTMState:
        return self.h.clone(), self.c.clone()


class Stepper:
    """Advances a :class:`Recurrent` one step per call, holding its weights and per-layer
    states between calls: ``h_t = stepper(x_t)``, ``stepper.state`` in ``forward``'s layout.

    LSTM layers step in place on preallocated buffers (:class:`LSTMStepBuffers`); the other
    cells through their ``inference_step``. The weights are those of the moment it was made;
    make a new one after training steps.
    """

    def __init__(self, layer: Recurrent, states: list, weights: list) -> None:
        self._layer = layer
        self._layers = [
            LSTMStepBuffers(s, *w) if isinstance(cell, LSTMCell) else _LayerStep(cell, s, w)
            for cell, s, w in zip(layer.cells, states, weights, strict=True)
        ]

    def __call__(self, x_t: Tensor | int) -> Tensor:
        """(B, I) -> (B, H): the last layer's new hidden state.

        ``x_t`` may be an int: the index of a one-hot input (the same for every row), which
        the first layer reads as one row of its input weights instead of multiplying zeros.
        """
        return self.advance(x_t).clone()  # the in-place layers overwrite it at the next call

    def advance(self, x_t: Tensor | int) -> Tensor:
        """Like calling the stepper, but returns the last layer's own state buffer, which
        the next call overwrites: for a caller that uses it at once (saves a copy per step)."""
        if torch.is_grad_enabled():  # entering no_grad costs microseconds: only when needed
            with torch.no_grad():
                return self.advance(x_t)
        for step in self._layers:
            x_t = step(x_t)
        return x_t

    @property
    def state(self) -> State:
        return self._layer._join_state([step.state for step in self._layers])


class _LayerStep:
    """One layer of a :class:`Stepper` through the cell's functional ``inference_step``."""

    def __init__(self, cell: nn.Module, state: Any, weights: tuple) -> None:
        self._step, self.state, self._weights = cell.inference_step, state, weights

    def __call__(self, x_t: Tensor | int) -> Tensor:
        x_t, self.state = self._step(x_t, self.state, *self._weights)
        return x_t
