"""The vanishing-gradient problem, measured: how much of the error at time t reaches t - lag.

The lecture ("Vanishing Gradients Revisited"): "Suppose we want to 'remember' an event at
time 0 and use this in our model of the world at some later time t. Error gradients vanish
exponentially quickly in the size of the time lag between these events." For the simple
RNN, ``h_t = tanh(W_hh h_{t-1} + W_xh x_t)``, the chain rule through the unrolled network
gives::

    ∂L_t/∂h_{t-lag} = ∂L_t/∂h_t · Π_{k = t, t-1, ..., t-lag+1} ∂h_k/∂h_{k-1}
    ∂h_k/∂h_{k-1}   = diag(tanh'(a_k)) W_hh          (a_k = W_hh h_{k-1} + W_xh x_k)

a product of ``lag`` Jacobians, each a multiplication by W_hh and by the tanh derivative
(at most 1, and small wherever a unit saturates). Its norm is bounded by
``(max_k ||diag(tanh'(a_k))|| · ||W_hh||)^lag``: when that factor is below one the gradient
shrinks geometrically with the lag, which is why a simple RNN cannot learn to use an event
that lies a few dozen steps back. The LSTM's cell state has an additive path,
``C_t = f_t * C_{t-1} + i_t * C~_t``, whose Jacobian along that path is ``diag(f_t)``: no
W_hh, no squashing, so with forget gates near 1 ("easy to have hidden state C_t just flow
through time, unchanged") the gradient survives. The GRU's ``h_t = (1 - z_t) * h_{t-1} +
z_t * h~_t`` gives the same kind of path, ``diag(1 - z_t)``. Fresh layers do not show it
yet (an LSTM starts with forget gates near σ(1) = 0.73, so 0.73^lag); training on a task
that needs a long memory, such as the adding problem, moves the gates there.

:func:`gradient_norms` measures ``||∂L_t/∂h_{t-lag}||`` for every lag ``0..T-1`` at once: the
layer is stepped through time with its reference cells (:mod:`striate.nn.cells`, the
lecture's equations), every hidden state ``h_s`` of the measured layer is kept in the
graph, and ONE backward pass from ``L_t`` (``torch.autograd.grad`` with all ``h_s`` as
inputs) returns every ``∂L_t/∂h_s``. The ``h_s`` are the states the cell hands to step
s + 1 (and to the layer above), so each gradient is the total derivative through every
later path (for the LSTM: h_s, whose error reaches C_{s+1} through the gates of step s + 1
and then flows along the C path). ``L_t`` is a per-sequence scalar: by default a fixed
random projection ``v · h_t`` of the top layer's output (a stand-in loss for an untrained
layer), or a model's own loss at t (:func:`head_readout`). Sequences in a batch are
independent, so one backward pass of the batch's summed loss gives each sequence's own
gradients; the curve is their norm averaged over the batch. The measurement runs in
float64 by default: a simple RNN's gradient at lag 300 is often far below float32's
smallest number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from striate.errors import StriateError
from striate.nn.recurrent import Recurrent

__all__ = ["GradientCurve", "gradient_norms", "head_readout", "random_projection"]

Readout = Callable[[Tensor], Tensor]  # top-layer h_t (B, H) -> per-sequence loss L_t (B,)


@dataclass(frozen=True)
class GradientCurve:
    """``norms[lag]`` = batch mean of ``||∂L_t/∂h_{t-lag}||`` for ``lag = 0 .. len - 1``."""

    cell: str
    norms: Tensor  # (lags,) float64
    objective: str  # what L_t is: "projection" or a loss's name

    @property
    def max_lag(self) -> int:
        return len(self.norms) - 1

    def at(self, lag: int) -> float:
        """The mean gradient norm at one lag."""
        if not 0 <= lag <= self.max_lag:
            raise StriateError(f"lag {lag} is outside 0..{self.max_lag}")
        return float(self.norms[lag])

    def relative(self) -> Tensor:
        """The curve divided by its value at lag 0 (how much of the error is left)."""
        return self.norms / self.norms[0].clamp_min(torch.finfo(self.norms.dtype).tiny)

    def to_json(self) -> dict:
        return {"cell": self.cell, "objective": self.objective, "norms": self.norms.tolist()}


def random_projection(
    hidden_size: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> Readout:
    """``L_t = v · h_t`` with a fixed random unit vector v (seeded): a loss-like scalar whose
    gradient with respect to h_t is v itself, so every measured curve starts at norm 1."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(hidden_size, generator=generator, dtype=dtype)
    v = v / v.norm()

    def project(h: Tensor) -> Tensor:
        return h @ v.to(h)

    return project


def _check_layer(layer: Recurrent, inputs: Tensor, layer_index: int) -> int:
    if not isinstance(layer, Recurrent):
        raise StriateError(f"expected a striate Recurrent layer, got {type(layer).__name__}")
    if layer.bidirectional:
        raise StriateError("gradients through time need a unidirectional layer")
    if inputs.dim() != 3 or inputs.shape[2] != layer.input_size:
        raise StriateError(
            f"inputs must have shape (B, T, {layer.input_size}), got {tuple(inputs.shape)}"
        )
    if inputs.shape[1] < 1:
        raise StriateError("inputs need at least one time step")
    index = layer_index + layer.num_layers if layer_index < 0 else layer_index
    if not 0 <= index < layer.num_layers:
        raise StriateError(f"layer {layer_index} does not exist ({layer.num_layers} layer(s))")
    return index


def gradient_norms(
    layer: Recurrent,
    inputs: Tensor,
    readout: Readout | None = None,
    layer_index: int = -1,
    dtype: torch.dtype = torch.float64,
    objective: str | None = None,
    seed: int = 0,
) -> GradientCurve:
    """``||∂L_t/∂h_{t-lag}||`` for ``t = T - 1`` and every ``lag = 0 .. T - 1``, batch-averaged.

    Args:
        layer: the recurrent layer (any cell; unidirectional; dropout is not applied).
        inputs: (B, T, I) input sequences; the curve has T points.
        readout: maps the top layer's h_t (B, H) to the per-sequence loss L_t (B,); default
            :func:`random_projection` (seeded by ``seed``). It is called on ``dtype``
            tensors, so a module inside it must be converted too (see the apps).
        layer_index: whose hidden states h_s are measured (default the top layer).
        dtype: precision of the measurement (the layer is copied and converted).
        objective: a name for L_t in the result (default "projection" or "loss").

    The layer is stepped with its reference cells (the lecture's equations); one backward
    pass gives all lags (see the module docstring).
    """
    index = _check_layer(layer, inputs, layer_index)
    measured = copy.deepcopy(layer).to(dtype=dtype).eval()
    x = inputs.detach().to(device=next(measured.parameters()).device, dtype=dtype)
    if readout is None:
        readout = random_projection(layer.hidden_size, seed, dtype)
        objective = objective or "projection"
    kept: list[Tensor] = []
    with torch.enable_grad():
        for k, cell in enumerate(measured.cells):
            state = None
            outputs = []
            for t in range(x.shape[1]):
                h, state = cell(x[:, t], state)
                outputs.append(h)
            if k == index:
                kept = outputs
            x = torch.stack(outputs, 1)
        loss = readout(x[:, -1])
        if loss.shape != (x.shape[0],):
            raise StriateError(
                f"the readout must give one loss per sequence ({x.shape[0]},), "
                f"got {tuple(loss.shape)}"
            )
        grads = torch.autograd.grad(loss.sum(), kept, allow_unused=True)
    norms = torch.stack(
        [torch.zeros(x.shape[0], dtype=dtype) if g is None else g.norm(dim=1).cpu() for g in grads]
    ).mean(1)  # (T,) over s = 0..T-1
    return GradientCurve(layer.cell, norms.flip(0).to(torch.float64), objective or "loss")


def head_readout(
    head: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], targets: Tensor
) -> Readout:
    """A model's own loss at t as the readout: ``loss(head(h_t), targets)`` per sequence.

    ``loss`` must not reduce over the batch (e.g. ``F.cross_entropy(..., reduction="none")``);
    a copy of ``head`` is converted to the dtype of the measurement.
    """

    head = copy.deepcopy(head)  # converted to the measurement's dtype, not the model's own

    def read(h: Tensor) -> Tensor:
        out = loss(head.to(dtype=h.dtype, device=h.device)(h), targets.to(h.device))
        return out.reshape(out.shape[0], -1).sum(1)

    return read
