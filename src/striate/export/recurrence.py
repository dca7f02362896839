"""A :class:`~striate.nn.recurrent.Recurrent` layer in a form every export format can hold.

The training layer calls torch's fused kernels, packs variable lengths and checks its
inputs in Python; none of that survives export (the lecture's GRU has no fused kernel at
all, and ``pack_padded_sequence`` is not a graph op). Here the same cells run on the same
weights as plain tensor operations, one step at a time:

* :class:`CellStep`: one cell's step on its input projection ``g_t = W_ih x_t + b_ih``
  (computed for all time steps at once), with the cells' own equations
  (:mod:`striate.nn.cells`); the lecture's GRU applies the reset gate *before* the
  recurrent product, ``h~_t = tanh(W · [r_t * h_{t-1}, x_t])``, which is ONNX's GRU with
  ``linear_before_reset=0``, written out as unrolled ops;
* :class:`StackStep`: one time step through all layers (for the step functions that
  generation runs: the char-RNN, the decoders);
* :class:`LoopRecurrent`: the whole sequence with per-row lengths (a row's state is held
  after its last step, its outputs there are zero, the backward direction starts at its own
  last element, exactly as ``Recurrent`` does). Scripted, its time loop is a TorchScript
  loop, which keeps the sequence length dynamic and which the TorchScript-based ONNX
  exporter turns into an ONNX ``Loop``; otherwise it is ``torch.export``'s ``scan``, which
  keeps the length dynamic in an exported program (a Python loop would be unrolled).

State layout everywhere: one tensor ``(S, L*D, B, H)``, S = 2 (h then C) for the LSTM and
1 otherwise, so every graph has the same inputs whatever the cell.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from striate.nn.recurrent import Recurrent

__all__ = ["CellStep", "LoopRecurrent", "StackStep", "state_parts"]


def state_parts(layer: Recurrent) -> int:
    """S, the tensors a state holds: 2 (h, C) for the LSTM, 1 (h) otherwise."""
    return 2 if layer.cell == "lstm" else 1


class CellStep(nn.Module):
    """One cell's step ``(g_t, h, c) -> (h, c)`` on its input projection ``g_t`` (B, G*H).

    Copies the cell's weights (transposed for ``x @ W^T``); a cell without biases gets
    zeros. ``c`` is the LSTM's memory and passes through untouched for the other cells.
    """

    __constants__ = ("kind", "hidden")  # (a Final annotation would be a string here)

    def __init__(self, cell: nn.Module, kind: str) -> None:
        super().__init__()
        self.kind, self.hidden = kind, cell.hidden_size
        rows = cell.weight_hh.shape[0]
        zeros = cell.weight_hh.new_zeros(rows)
        b_ih = zeros if cell.bias_ih is None else cell.bias_ih
        b_hh = zeros if cell.bias_hh is None else cell.bias_hh
        self.register_buffer("w_ih_t", cell.weight_ih.detach().T.contiguous().clone())
        self.register_buffer("w_hh_t", cell.weight_hh.detach().T.contiguous().clone())
        self.register_buffer("b_ih", b_ih.detach().clone())
        self.register_buffer("b_hh", b_hh.detach().clone())

    def project(self, x: Tensor) -> Tensor:
        """``W_ih x + b_ih`` for inputs (..., I) -> (..., G*H)."""
        return torch.matmul(x, self.w_ih_t) + self.b_ih

    def project_index(self, ids: Tensor) -> Tensor:
        """``W_ih x + b_ih`` for one-hot inputs given by their index (any shape) -> (..., G*H):
        the product of a one-hot vector with W_ih is one row of it."""
        return self.w_ih_t[ids] + self.b_ih

    def forward(self, g: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        H = self.hidden
        if self.kind == "lstm":  # blocks i, f, C~, o (torch's order)
            a = g + torch.matmul(h, self.w_hh_t) + self.b_hh
            i = torch.sigmoid(a[:, :H])  # i_t = σ(W_i·[h_{t-1}, x_t] + b_i)
            f = torch.sigmoid(a[:, H : 2 * H])  # f_t = σ(W_f·[h_{t-1}, x_t] + b_f)
            c_tilde = torch.tanh(a[:, 2 * H : 3 * H])  # C~_t = tanh(W_C·[h_{t-1}, x_t] + b_C)
            o = torch.sigmoid(a[:, 3 * H :])  # o_t = σ(W_o [h_{t-1}, x_t] + b_o)
            c = f * c + i * c_tilde  # C_t = f_t * C_{t-1} + i_t * C~_t
            return o * torch.tanh(c), c  # h_t = o_t * tanh(C_t)
        if self.kind == "gru":  # the lecture's GRU, blocks z, r, h~
            zr = torch.sigmoid(
                g[:, : 2 * H] + torch.matmul(h, self.w_hh_t[:, : 2 * H]) + self.b_hh[: 2 * H]
            )  # z_t = σ(W_z · [h_{t-1}, x_t]),  r_t = σ(W_r · [h_{t-1}, x_t])
            z, r = zr[:, :H], zr[:, H:]
            h_tilde = torch.tanh(
                g[:, 2 * H :] + torch.matmul(r * h, self.w_hh_t[:, 2 * H :]) + self.b_hh[2 * H :]
            )  # h~_t = tanh(W · [r_t * h_{t-1}, x_t]): reset before the recurrent product
            return (1 - z) * h + z * h_tilde, c  # h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
        if self.kind == "gru_cudnn":  # torch.nn.GRU's variant, blocks r, z, n
            a = torch.matmul(h, self.w_hh_t) + self.b_hh
            r = torch.sigmoid(g[:, :H] + a[:, :H])
            z = torch.sigmoid(g[:, H : 2 * H] + a[:, H : 2 * H])
            n = torch.tanh(g[:, 2 * H :] + r * a[:, 2 * H :])
            return (1 - z) * n + z * h, c
        return torch.tanh(g + torch.matmul(h, self.w_hh_t) + self.b_hh), c  # simple RNN

    def run(self, g: Tensor, keep: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The step over all T of ``g`` (B, T, G*H) from ``(h, c)``; where ``keep`` (B, T, 1)
        is False the state is held and the output is zero. ``-> (outputs (B, T, H), h, c)``.

        Scripted (TorchScript, ONNX) this is a loop; otherwise ``torch.export``'s ``scan``,
        which keeps T dynamic in an exported program (a Python loop would be unrolled)."""
        if not torch.jit.is_scripting():
            return self._scan(g, keep, h, c)
        outputs: list[Tensor] = []
        for t in range(g.shape[1]):
            h_new, c_new = self.forward(g[:, t], h, c)
            k = keep[:, t]
            h = torch.where(k, h_new, h)
            c = torch.where(k, c_new, c)
            outputs.append(torch.where(k, h_new, torch.zeros_like(h_new)))
        return torch.stack(outputs, 1), h, c

    @torch.jit.unused
    def _scan(self, g: Tensor, keep: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from torch._higher_order_ops.scan import scan

        def combine(carry: tuple[Tensor, Tensor], xs: tuple[Tensor, Tensor]) -> tuple:
            h, c = carry
            g_t, k = xs
            h_new, c_new = self.forward(g_t, h, c)
            out = torch.where(k, h_new, torch.zeros_like(h_new))
            return (torch.where(k, h_new, h), torch.where(k, c_new, c)), out

        (h, c), outputs = scan(combine, (h, c), (g.transpose(0, 1), keep.transpose(0, 1)))
        return outputs.transpose(0, 1), h, c


class StackStep(nn.Module):
    """One time step through every layer of a unidirectional :class:`Recurrent`:
    ``(g (B, G*H) for layer 0, state (S, L, B, H)) -> (top h (B, H), state)``."""

    __constants__ = ("lstm",)

    def __init__(self, layer: Recurrent) -> None:
        super().__init__()
        if layer.bidirectional:
            raise ValueError("a step function needs a unidirectional layer")
        self.lstm = layer.cell == "lstm"
        self.cells = nn.ModuleList(CellStep(cell, layer.cell) for cell in layer.cells)

    @property
    def first(self) -> CellStep:
        return self.cells[0]

    def forward(self, g: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        x = g
        for k, cell in enumerate(self.cells):
            if k > 0:
                x = cell.project(x)
            h, c = cell(x, state[0, k], state[state.shape[0] - 1, k])
            hs.append(h)
            cs.append(c)
            x = h
        if self.lstm:
            return x, torch.stack([torch.stack(hs), torch.stack(cs)])
        return x, torch.stack(hs).unsqueeze(0)


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Each row's first ``length`` steps of (B, T, F) reversed, the rest left in place
    (:func:`striate.models.seq2seq.reverse_within_lengths` on a feature tensor)."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = lengths.unsqueeze(1)
    index = torch.where(steps < last, last - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(2).expand(x.shape[0], x.shape[1], x.shape[2]))


class LoopRecurrent(nn.Module):
    """The whole layer over ``x`` (B, T, I) with ``lengths`` (B,) each in 1..T:
    ``-> (outputs (B, T, D*H), state (S, L*D, B, H))`` from a zero or given state, as
    :meth:`Recurrent.forward` computes it; the time loop is a TorchScript loop."""

    __constants__ = ("lstm", "directions", "hidden")

    def __init__(self, layer: Recurrent) -> None:
        super().__init__()
        self.lstm = layer.cell == "lstm"
        self.directions = layer.num_directions
        self.cells = nn.ModuleList(CellStep(cell, layer.cell) for cell in layer.cells)
        self.hidden = layer.hidden_size

    def zero_state(self, x: Tensor) -> Tensor:
        parts = 2 if self.lstm else 1
        return x.new_zeros(parts, len(self.cells), x.shape[0], self.hidden)

    def forward(self, x: Tensor, lengths: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        steps = torch.arange(x.shape[1], device=x.device)
        keep = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)  # (B, T, 1)
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        outputs: list[Tensor] = []
        for k, cell in enumerate(self.cells):
            backward = self.directions == 2 and k % 2 == 1
            if k % self.directions == 0 and k > 0:  # a new layer reads the last one's outputs
                x = torch.cat(outputs, 2)
                outputs = []
            seq = reverse_within(x, lengths) if backward else x
            out, h, c = cell.run(cell.project(seq), keep, state[0, k], state[state.shape[0] - 1, k])
            outputs.append(reverse_within(out, lengths) if backward else out)
            hs.append(h)
            cs.append(c)
        final = (
            torch.stack([torch.stack(hs), torch.stack(cs)])
            if self.lstm
            else torch.stack(hs).unsqueeze(0)
        )
        return torch.cat(outputs, 2), final
