"""Recurrent cells exactly as the lecture writes them: one time step, ``x_t, state -> h_t``.

These are the *reference* implementations: each ``forward`` reads like the equations it
quotes and is deliberately unoptimized. :class:`striate.nn.recurrent.Recurrent` loops them
over time (``impl="reference"``) and checks its fast paths against them.

Parameter layout. Every cell keeps its weights the way ``torch.nn.LSTM`` / ``torch.nn.GRU``
/ ``torch.nn.RNN`` do, so the fused kernels run on them as they are and torch weights load
without reshuffling::

    weight_ih  (G*H, I)   the input half of each W, gate blocks stacked by rows
    weight_hh  (G*H, H)   the recurrent half of each W
    bias_ih    (G*H,)     } both optional (``bias=False``); the lecture's b is their sum,
    bias_hh    (G*H,)     } they are two only because torch's kernels take two

The lecture multiplies one matrix by the concatenation ``[h_{t-1}, x_t]``. Splitting that
matrix by columns, ``W = [W_hh | W_ih]``, gives the same number::

    W · [h_{t-1}, x_t] + b = W_hh h_{t-1} + W_ih x_t + (b_ih + b_hh)

which is what the cells compute, one gate block ``k`` at a time (:meth:`_Cell._affine`).
Gate order of the G blocks: LSTM ``i, f, C~, o`` (torch's order, required by its kernel);
lecture GRU ``z, r, h~``; cuDNN GRU ``r, z, n`` (torch's order); simple RNN one block.

Initialization is torch's: every weight and bias uniform in (-1/sqrt(H), 1/sqrt(H)). The
LSTM additionally starts its forget gate at ``forget_bias`` (default 1.0, as recommended by
Jozefowicz, Zaremba & Sutskever 2015, "An Empirical Exploration of Recurrent Network
Architectures"), so that early in training f_t is about sigmoid(1) = 0.73 and C_t flows
through time; ``forget_bias=None`` keeps torch's plain uniform initialization.

Inference. Besides ``forward``, each cell has ``inference_step(x_t, state, *weights)``, the
same step without autograd for generating one token at a time, on weights prepared once by
``inference_weights()`` (``[W_ih | W_hh]`` concatenated so one ``addmm`` on ``[x_t, h]`` does
a layer) with in-place activations. :meth:`Recurrent.step` caches those weights. ``x_t`` may
also be an int, the index of a one-hot input: W · [x_t, h] is then one row of W_ih plus
W_hh h, which saves the one-hot vector, the concatenation and part of the product.
:mod:`striate.nn.stepping` advances whole layers this way, one token at a time.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from striate.errors import StriateError

__all__ = ["CuDNNGRUCell", "GRUCell", "LSTMCell", "SimpleRNNCell"]

LSTMState = tuple[Tensor, Tensor]


class _Cell(nn.Module):
    """Shared parameters, initialization and zero state of the cells below.

    A subclass sets ``num_gates`` (G, the gate blocks stacked in each weight) and writes
    ``forward`` (the reference step) and ``inference_step`` (the lean one).
    """

    num_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StriateError(f"{name} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    @property
    def state_size(self) -> int:
        """Width H of the hidden state h (and of C for the LSTM)."""
        return self.hidden_size

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """All-zero h_0 of shape (B, H), on the parameters' device and dtype by default."""
        return self.weight_hh.new_zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def _affine(self, k: int, h: Tensor, x: Tensor) -> Tensor:
        """``W_k · [h, x] + b_k = W_hh[k] h + W_ih[k] x + b_ih[k] + b_hh[k]`` for gate block k.

        ``h`` (B, H), ``x`` (B, I) -> (B, H).
        """
        rows = slice(k * self.hidden_size, (k + 1) * self.hidden_size)
        out = h @ self.weight_hh[rows].T + x @ self.weight_ih[rows].T
        if self.bias_ih is not None:
            out = out + self.bias_ih[rows] + self.bias_hh[rows]
        return out

    # Inference (see the module docstring): inference_step(x_t, state, *inference_weights())

    def _concat_weights(self, rows: Tensor | slice) -> tuple[Tensor, Tensor | None]:
        """``[W_ih | W_hh]`` for the given gate rows, transposed for ``[x, h] @ W^T``."""
        w = torch.cat([self.weight_ih[rows], self.weight_hh[rows]], 1)
        b = None if self.bias_ih is None else (self.bias_ih[rows] + self.bias_hh[rows])
        return w.T.contiguous(), b  # row-major: a one-hot input reads one contiguous row

    def inference_weights(self) -> tuple[Tensor | None, ...]:
        """Weights for :meth:`inference_step` (default: all rows of ``[W_ih | W_hh]``, b)."""
        return self._concat_weights(slice(None))


def _affine(inputs: Tensor | int, w_t: Tensor, b: Tensor | None) -> Tensor:
    """``inputs @ w_t + b`` in one call (B, K) x (K, N) -> (B, N).

    ``inputs`` may be an int: the index of a one-hot input, whose product with ``w_t`` is
    that row of it (no multiplication at all).
    """
    if isinstance(inputs, int):
        row = w_t[inputs : inputs + 1]
        return row.clone() if b is None else row + b
    return inputs @ w_t if b is None else torch.addmm(b, inputs, w_t)


def _affine_xh(x_t: Tensor | int, h: Tensor, w_t: Tensor, b: Tensor | None) -> Tensor:
    """``[x_t, h] @ w_t + b``: one product on the concatenation for a dense ``x_t`` (B, I);
    for a one-hot ``x_t`` given as its index, ``W_x[token] + h @ W_h`` without the zeros."""
    if isinstance(x_t, int):
        inputs = w_t.shape[0] - h.shape[1]
        return torch.addmm(_affine(x_t, w_t, b), h, w_t[inputs:])
    return _affine(torch.cat((x_t, h), 1), w_t, b)


class SimpleRNNCell(_Cell):
    """The lecture's simple (Elman) recurrent network, one step.

    "We can process a sequence of vectors x by applying a recurrence formula at every time
    step: h_t = f_W(h_{t-1}, x_t)". Hidden state:

        h_t = tanh(W_hh h_{t-1} + W_xh x_t)

    (``weight_hh`` is W_hh, ``weight_ih`` is W_xh, plus the optional bias). The lecture's
    output ``y_t = W_hy h_t`` is not part of the recurrence: it is the model's head, an
    ``nn.Linear(H, O)`` applied to the h_t this cell returns. Same maths and layout as
    ``torch.nn.RNNCell(nonlinearity="tanh")``.

    Shapes: ``x_t`` (B, I), ``state`` h_{t-1} (B, H) or None (zeros) -> ``(h_t, h_t)``.
    """

    num_gates = 1

    def forward(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.init_state(x_t.shape[0]).to(x_t) if state is None else state
        h = torch.tanh(self._affine(0, h, x_t))  # h_t = tanh(W_hh h_{t-1} + W_xh x_t)
        return h, h

    @staticmethod
    def inference_step(
        x_t: Tensor | int, h: Tensor, w_t: Tensor, b: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        h = _affine_xh(x_t, h, w_t, b).tanh_()
        return h, h


class LSTMCell(_Cell):
    """Long Short Term Memory, one step, in the lecture's equations:

        f_t = σ(W_f · [h_{t-1}, x_t] + b_f)          forget gate
        i_t = σ(W_i · [h_{t-1}, x_t] + b_i)          input gate
        C~_t = tanh(W_C · [h_{t-1}, x_t] + b_C)      candidate memory
        C_t = f_t * C_{t-1} + i_t * C~_t
        o_t = σ(W_o [h_{t-1}, x_t] + b_o)            output gate
        h_t = o_t * tanh(C_t)

    "Forget gate: conditionally discard previously remembered information. Input gate:
    conditionally remember new information. Output gate: conditionally output a relevant
    part of our memory." The gate blocks are stored in torch's order ``i, f, C~, o``, so
    this is the same function as ``torch.nn.LSTMCell`` and the fused ``torch.lstm`` kernel.

    Args:
        forget_bias: initial b_f (set in ``bias_ih``; ``bias_hh``'s forget block starts at
            0, so their sum is ``forget_bias``). ``None``: torch's uniform initialization.

    Shapes: ``x_t`` (B, I), ``state`` ``(h_{t-1}, C_{t-1})`` each (B, H), or None (zeros)
    -> ``(h_t, (h_t, C_t))``.
    """

    num_gates = 4
    INPUT, FORGET, CANDIDATE, OUTPUT = range(4)  # gate blocks, in torch's order

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float | None = 1.0,
    ) -> None:
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias)

    def reset_parameters(self) -> None:
        """Uniform like torch; then b_f = ``forget_bias`` when it is set (and bias=True)."""
        super().reset_parameters()
        if self.forget_bias is not None and self.bias_ih is not None:
            forget = slice(self.FORGET * self.hidden_size, (self.FORGET + 1) * self.hidden_size)
            with torch.no_grad():
                self.bias_ih[forget].fill_(self.forget_bias)
                self.bias_hh[forget].zero_()

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> LSTMState:
        """All-zero ``(h_0, C_0)``, each (B, H)."""
        zeros = super().init_state
        return zeros(batch_size, device, dtype), zeros(batch_size, device, dtype)

    def forward(self, x_t: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        if state is None:
            state = tuple(s.to(x_t) for s in self.init_state(x_t.shape[0]))
        h, c = state
        f = torch.sigmoid(self._affine(self.FORGET, h, x_t))  # f_t = σ(W_f·[h_{t-1}, x_t] + b_f)
        i = torch.sigmoid(self._affine(self.INPUT, h, x_t))  # i_t = σ(W_i·[h_{t-1}, x_t] + b_i)
        c_tilde = torch.tanh(self._affine(self.CANDIDATE, h, x_t))  # C~_t = tanh(W_C·[h, x] + b_C)
        c = f * c + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C~_t
        o = torch.sigmoid(self._affine(self.OUTPUT, h, x_t))  # o_t = σ(W_o [h_{t-1}, x_t] + b_o)
        h = o * torch.tanh(c)  # h_t = o_t * tanh(C_t)
        return h, (h, c)

    def inference_weights(self) -> tuple[Tensor | None, ...]:
        """``[W_ih | W_hh]`` with the rows reordered to ``i, f, o, C~``: sigmoids first."""
        i, f, c, o = torch.arange(4 * self.hidden_size, device=self.weight_hh.device).chunk(4)
        return self._concat_weights(torch.cat([i, f, o, c]))

    @staticmethod
    def inference_step(
        x_t: Tensor | int, state: LSTMState, w_t: Tensor, b: Tensor | None
    ) -> tuple[Tensor, LSTMState]:
        h, c = state
        hidden = h.shape[1]
        gates = _affine_xh(x_t, h, w_t, b)  # (B, 4H): i, f, o | C~
        gates[:, : 3 * hidden].sigmoid_()
        gates[:, 3 * hidden :].tanh_()
        i, f, o, c_tilde = gates.chunk(4, 1)
        c = (f * c).addcmul_(i, c_tilde)
        h = c.tanh().mul_(o)
        return h, (h, c)


class GRUCell(_Cell):
    """Gated Recurrent Unit, one step, in the lecture's formulation:

        z_t = σ(W_z · [h_{t-1}, x_t])
        r_t = σ(W_r · [h_{t-1}, x_t])
        h~_t = tanh(W · [r_t * h_{t-1}, x_t])
        h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

    "Merge input / forget units into a single update unit. Merge hidden states." The reset
    gate scales h_{t-1} *before* the recurrent product, and z_t weighs the *new* candidate.
    This is NOT what ``torch.nn.GRU`` computes; for that see :class:`CuDNNGRUCell`. Gate
    blocks are stored ``z, r, h~``; the bias (``b_ih + b_hh``, optional) is added inside
    each σ / tanh.

    Shapes: ``x_t`` (B, I), ``state`` h_{t-1} (B, H) or None (zeros) -> ``(h_t, h_t)``.
    """

    num_gates = 3
    UPDATE, RESET, CANDIDATE = range(3)

    def forward(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.init_state(x_t.shape[0]).to(x_t) if state is None else state
        z = torch.sigmoid(self._affine(self.UPDATE, h, x_t))  # z_t = σ(W_z · [h_{t-1}, x_t])
        r = torch.sigmoid(self._affine(self.RESET, h, x_t))  # r_t = σ(W_r · [h_{t-1}, x_t])
        h_tilde = torch.tanh(self._affine(self.CANDIDATE, r * h, x_t))  # tanh(W · [r_t * h, x_t])
        h = (1 - z) * h + z * h_tilde  # h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
        return h, h

    def inference_weights(self) -> tuple[Tensor | None, ...]:
        """``[W_ih | W_hh]`` and b for z and r, then for h~ (which reads r * h)."""
        split = 2 * self.hidden_size
        return (*self._concat_weights(slice(0, split)), *self._concat_weights(slice(split, None)))

    @staticmethod
    def inference_step(
        x_t: Tensor | int,
        h: Tensor,
        w_zr_t: Tensor,
        b_zr: Tensor | None,
        w_n_t: Tensor,
        b_n: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        z, r = _affine_xh(x_t, h, w_zr_t, b_zr).sigmoid_().chunk(2, 1)
        h_tilde = _affine_xh(x_t, r * h, w_n_t, b_n).tanh_()
        h = torch.lerp(h, h_tilde, z)  # (1 - z) * h + z * h~
        return h, h


class CuDNNGRUCell(_Cell):
    """The GRU variant of cuDNN and ``torch.nn.GRU`` / ``torch.nn.GRUCell``, one step:

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Two differences from the lecture's :class:`GRUCell`: the reset gate is applied *after*
    the recurrent product (so ``b_hn`` is not redundant here), and z_t keeps the *old* state
    rather than admitting the new one. Gate blocks are stored in torch's order ``r, z, n``
    so ``torch.nn.GRU`` weights load unchanged and the fused ``torch.gru`` kernel applies.

    Shapes: ``x_t`` (B, I), ``state`` h_{t-1} (B, H) or None (zeros) -> ``(h_t, h_t)``.
    """

    num_gates = 3
    RESET, UPDATE, CANDIDATE = range(3)

    def forward(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.init_state(x_t.shape[0]).to(x_t) if state is None else state
        r = torch.sigmoid(self._affine(self.RESET, h, x_t))
        z = torch.sigmoid(self._affine(self.UPDATE, h, x_t))
        rows = slice(self.CANDIDATE * self.hidden_size, (self.CANDIDATE + 1) * self.hidden_size)
        hidden_n = h @ self.weight_hh[rows].T  # W_hn h_{t-1} + b_hn
        input_n = x_t @ self.weight_ih[rows].T  # W_in x_t + b_in
        if self.bias_ih is not None:
            hidden_n = hidden_n + self.bias_hh[rows]
            input_n = input_n + self.bias_ih[rows]
        n = torch.tanh(input_n + r * hidden_n)
        h = (1 - z) * n + z * h
        return h, h

    def inference_weights(self) -> tuple[Tensor | None, ...]:
        """The weights unconcatenated (r multiplies ``W_hn h + b_hn``), transposed row-major."""
        return self.weight_ih.T.contiguous(), self.bias_ih, self.weight_hh.T, self.bias_hh

    @staticmethod
    def inference_step(
        x_t: Tensor | int,
        h: Tensor,
        w_ih_t: Tensor,
        b_ih: Tensor | None,
        w_hh_t: Tensor,
        b_hh: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        hidden = h.shape[1]
        gi, gh = _affine(x_t, w_ih_t, b_ih), _affine(h, w_hh_t, b_hh)  # (B, 3H): r, z, n
        r, z = (gi[:, : 2 * hidden] + gh[:, : 2 * hidden]).sigmoid_().chunk(2, 1)
        n = gh[:, 2 * hidden :].mul_(r).add_(gi[:, 2 * hidden :]).tanh_()
        h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
        return h, h
