"""``Recurrent``: a stack of recurrent cells looped over time, with two implementations.

The cell/loop split follows Keras: a cell (:mod:`striate.nn.cells`) does one time step,
``forward(x_t, state) -> (h_t, state)``; this layer runs it over a sequence, stacks layers
(with dropout between them, not after the last), optionally adds a backward direction, and
handles variable lengths. The lecture: "We can process a sequence of vectors x by applying
a recurrence formula at every time step: h_t = f_W(h_{t-1}, x_t)".

Implementations (``impl``), same parameters and same results:

* ``"reference"``: the cells' equations, one Python step at a time. Slow and obvious.
* ``"fast"``: for ``"rnn"``, ``"lstm"`` and ``"gru_cudnn"`` the maths is exactly that of
  ``torch.nn.RNN`` / ``LSTM`` / ``GRU``, so the layer calls torch's fused kernel
  (``torch.rnn_tanh`` / ``torch.lstm`` / ``torch.gru``) directly on the cells' parameters,
  which are kept in torch's layout (no copies). For the lecture's ``"gru"``, which no
  library kernel computes, :func:`run_gru_fast` projects the inputs of all time steps
  with one matrix product and loops only over the recurrence, with a hand-written
  backward pass (:class:`GRURecurrence`). On CPU at batch 64, hidden 512, 100 steps this
  matches ``torch.nn.GRU``'s speed; a TorchScript-compiled loop was measured no faster.
* ``"auto"`` (default): the fastest path the cell has; today that is always ``"fast"``.

For generation, :meth:`Recurrent.step` advances one time step without autograd, on weights
pre-concatenated as ``[W_ih | W_hh]`` so that each layer costs one ``addmm``.

Example::

    >>> rnn = Recurrent("lstm", input_size=8, hidden_size=16, num_layers=2)
    >>> outputs, (h, c) = rnn(torch.randn(4, 10, 8), lengths=torch.tensor([10, 3, 7, 1]))
    >>> outputs.shape, h.shape, c.shape
    (torch.Size([4, 10, 16]), torch.Size([2, 4, 16]), torch.Size([2, 4, 16]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from striate.errors import StriateError
from striate.nn.cells import CuDNNGRUCell, GRUCell, LSTMCell, SimpleRNNCell
from striate.nn.stepping import Stepper
from striate.nn.time_loops import run_gru_fast, run_reference

__all__ = ["CELLS", "IMPLS", "Recurrent", "State", "Stepper", "detach_state"]

State = Tensor | tuple[Tensor, Tensor]  # h (L*D, B, H), or (h, c) for the LSTM
CELLS: dict[str, type[nn.Module]] = {
    "rnn": SimpleRNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "gru_cudnn": CuDNNGRUCell,
}
IMPLS = ("auto", "reference", "fast")
MAX_PARAMETERS = 2**30  # 4 GiB of float32 weights: far beyond any model this library trains
_FUSED = {"rnn": torch.rnn_tanh, "lstm": torch.lstm, "gru_cudnn": torch.gru}


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a state (truncated BPTT): works for h, ``(h, c)`` and None."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


def _clear_step_cache(module: Recurrent, incompatible_keys: object) -> None:
    module._step_cache = None


class Recurrent(nn.Module):
    """A (multi-layer, optionally bidirectional) recurrent layer over batch-first sequences.

    Args:
        cell: ``"rnn"`` (simple RNN, tanh), ``"lstm"``, ``"gru"`` (the lecture's GRU) or
            ``"gru_cudnn"`` (``torch.nn.GRU``'s variant; see :class:`CuDNNGRUCell`).
        input_size: I, features per time step.
        hidden_size: H, width of h (and of C for the LSTM).
        num_layers: L, stacked cells; layer k > 0 reads layer k-1's outputs.
        dropout: probability of dropping layer k-1's outputs on their way into layer k
            (training only; never after the last layer).
        bidirectional: add a second cell per layer that reads the sequence backwards; the
            outputs of both directions are concatenated (D = 2).
        bias: whether the cells have biases.
        impl: ``"auto"``, ``"reference"`` or ``"fast"`` (see the module docstring).
        forget_bias: initial LSTM forget-gate bias (default 1.0, Jozefowicz et al. 2015;
            None for torch's uniform init). Ignored by the other cells.

    Call: ``forward(x (B, T, I), state=None, lengths=None) -> (outputs (B, T, D*H), state)``
    where ``state`` is h of shape (L*D, B, H), or ``(h, c)`` for the LSTM, indexed
    ``layer * D + direction`` like torch. ``lengths`` (B,), each in 1..T: outputs past a
    sequence's length are zero and its returned state is the one after its last valid
    step; the backward direction starts at each sequence's own last element.

    Parameters live in ``cells[layer * D + direction]`` as ``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``, laid out like ``torch.nn.LSTM``'s ``weight_ih_l{k}`` etc.;
    :meth:`from_torch` converts a torch module.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        bias: bool = True,
        impl: str = "auto",
        forget_bias: float | None = 1.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise StriateError(f"unknown recurrent cell {cell!r}; use one of {sorted(CELLS)}")
        if impl not in IMPLS:
            raise StriateError(f"unknown impl {impl!r}; use one of {list(IMPLS)}")
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StriateError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise StriateError(f"dropout must be in [0, 1), got {dropout!r}")
        directions = 2 if bidirectional else 1
        rows = CELLS[cell].num_gates * hidden_size  # per layer and direction: W_ih, W_hh, b
        widths = [input_size] + [hidden_size * directions] * (num_layers - 1)
        count = sum(rows * (width + hidden_size + 2) * directions for width in widths)
        if count > MAX_PARAMETERS:  # refused before a byte is allocated
            raise StriateError(
                f"a {num_layers}-layer {cell} of hidden size {hidden_size} (input size "
                f"{input_size}) would have {count:,} parameters, over the limit {MAX_PARAMETERS:,}"
            )
        self.cell, self.impl = cell, impl
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout, self.bidirectional, self.bias = float(dropout), bool(bidirectional), bias
        self.num_directions = 2 if bidirectional else 1
        extra = {"forget_bias": forget_bias} if cell == "lstm" else {}
        self.cells = nn.ModuleList(
            CELLS[cell](
                input_size if k == 0 else hidden_size * self.num_directions,
                hidden_size,
                bias,
                **extra,
            )
            for k in range(num_layers)
            for _ in range(self.num_directions)
        )
        self._step_cache: tuple[tuple, list[tuple[Tensor | None, ...]]] | None = None
        self.register_load_state_dict_post_hook(_clear_step_cache)

    def extra_repr(self) -> str:
        return (
            f"{self.cell!r}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"dropout={self.dropout}, bidirectional={self.bidirectional}, impl={self.impl!r}"
        )

    # ------------------------------------------------------------------------- state

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """All-zero initial state: h (L*D, B, H), or ``(h, c)`` for the LSTM."""
        ref = self.cells[0].weight_hh
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        h = ref.new_zeros(shape, device=device, dtype=dtype)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def _split_state(self, state: State) -> list:
        """(L*D, B, H) stacked state -> one state per cell (an (h, c) pair for the LSTM)."""
        if self.cell == "lstm":
            return list(zip(state[0].unbind(0), state[1].unbind(0), strict=True))
        return list(state.unbind(0))

    def _join_state(self, states: Sequence) -> State:
        if self.cell == "lstm":
            return torch.stack([h for h, _ in states]), torch.stack([c for _, c in states])
        return torch.stack(list(states))

    # ------------------------------------------------------------------------- checks

    def _check_state(self, state: State, batch: int) -> None:
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        parts = state if self.cell == "lstm" else (state,)
        if self.cell == "lstm" and not (isinstance(state, tuple | list) and len(state) == 2):
            raise StriateError("an LSTM state is a pair (h, c)")
        for part in parts:
            if not isinstance(part, Tensor) or tuple(part.shape) != expected:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise StriateError(f"state must have shape {expected} (L*D, B, H), got {got}")

    def _check_lengths(self, lengths: Tensor, batch: int, steps: int) -> Tensor:
        """Validate lengths (B,) in 1..T; returns them as int64 on the CPU."""
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (batch,) or lengths.is_floating_point() or lengths.is_complex():
            raise StriateError(f"lengths must be an integer tensor of shape ({batch},)")
        lengths = lengths.detach().to("cpu", torch.int64)
        if int(lengths.min()) < 1 or int(lengths.max()) > steps:
            raise StriateError(f"every length must be between 1 and the {steps} time steps")
        return lengths

    # ------------------------------------------------------------------------- forward

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """``x`` (B, T, I) -> ``(outputs (B, T, D*H), state)``; see the class docstring."""
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise StriateError(
                f"expected input of shape (B, T, {self.input_size}), got {tuple(x.shape)}"
            )
        batch, steps = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = self._check_lengths(lengths, batch, steps)
        if state is None:
            state = self.init_state(batch, x.device, x.dtype)
        else:
            self._check_state(state, batch)
        if self.impl != "reference" and self.cell in _FUSED:
            return self._forward_fused(x, state, lengths)
        run = run_reference if self.impl == "reference" else run_gru_fast
        return self._forward_loop(x, state, lengths, run)

    def _flat_weights(self) -> list[Tensor]:
        """The parameters in the order torch's fused kernels take them (no copies)."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if self.bias else 2]
        return [getattr(cell, name) for cell in self.cells for name in names]

    def _forward_fused(
        self, x: Tensor, state: State, lengths: Tensor | None
    ) -> tuple[Tensor, State]:
        """rnn / lstm / gru_cudnn: torch's fused multi-layer kernel, packed for lengths."""
        kernel = _FUSED[self.cell]
        hx = list(state) if self.cell == "lstm" else state
        args = (
            self._flat_weights(),
            self.bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
        )
        if lengths is None:
            out, *hidden = kernel(x, hx, *args, True)  # batch_first=True
            return out, (tuple(hidden) if self.cell == "lstm" else hidden[0])
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        sort, unsort = packed.sorted_indices, packed.unsorted_indices
        if self.cell == "lstm":
            hx = [h.index_select(1, sort) for h in hx]
        else:
            hx = hx.index_select(1, sort)
        data, *hidden = kernel(packed.data, packed.batch_sizes, hx, *args)
        out, _ = pad_packed_sequence(
            packed._replace(data=data), batch_first=True, total_length=x.shape[1]
        )
        hidden = [h.index_select(1, unsort) for h in hidden]
        return out, (tuple(hidden) if self.cell == "lstm" else hidden[0])

    def _forward_loop(
        self, x: Tensor, state: State, lengths: Tensor | None, run: Callable
    ) -> tuple[Tensor, State]:
        """Layers and directions around ``run(cell, x, state, mask, reverse)``."""
        mask = None  # (B, T, 1): is time step t inside sequence b?
        if lengths is not None:
            steps = torch.arange(x.shape[1], device=x.device)
            mask = (steps < lengths.to(x.device)[:, None]).unsqueeze(2)
        states, finals = self._split_state(state), []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:  # between layers, never after the last
                x = F.dropout(x, self.dropout, self.training)
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                out, final = run(self.cells[k], x, states[k], mask, direction == 1)
                outputs.append(out)
                finals.append(final)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 2)  # (B, T, D*H)
        return x, self._join_state(finals)

    # ------------------------------------------------------------------------- cuDNN

    def flatten_parameters(self) -> None:
        """On CUDA, lay the fused cells' weights out in one cuDNN buffer, as torch's RNNs do.

        Otherwise cuDNN compacts them into a fresh buffer at every call (with a warning).
        A no-op on the CPU, for the lecture's ``"gru"``, and wherever torch would skip it.
        Called automatically after ``.to()`` / ``.cuda()``.
        """
        weights = self._flat_weights()
        first = weights[0]
        if (
            self.cell not in _FUSED
            or not all(w.is_cuda and w.dtype == first.dtype for w in weights)
            or not all(torch.backends.cudnn.is_acceptable(w) for w in weights)
            or len({w.data_ptr() for w in weights}) != len(weights)
            or not torch._use_cudnn_rnn_flatten_weight()
        ):
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        mode = {"rnn": "RNN_TANH", "lstm": "LSTM", "gru_cudnn": "GRU"}[self.cell]
        with torch.cuda.device_of(first), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(
                weights,
                4 if self.bias else 2,
                self.input_size,
                cudnn_rnn.get_cudnn_mode(mode),
                self.hidden_size,
                0,  # proj_size
                self.num_layers,
                True,  # batch_first
                self.bidirectional,
            )

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    # ------------------------------------------------------------------------- step

    @torch.no_grad()
    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One time step for inference (no autograd): ``x_t`` (B, I) -> ``(h_t (B, H), state)``.

        Equal to ``forward`` on a length-1 sequence, but with a small fixed cost per call:
        each layer is one ``addmm`` on ``[x_t, h_{t-1}]`` with the weights pre-concatenated
        as ``[W_ih | W_hh]`` (rows reordered so the sigmoid gates are contiguous) and
        in-place activations (the cells' ``inference_step``). The concatenated copy (about
        the size of the weights) is cached and rebuilt when a parameter changes. At batch 1
        the time goes into streaming the weights from memory once per step.
        Unidirectional layers only.
        """
        if self.bidirectional:
            raise StriateError(
                "step() needs a unidirectional layer; the backward direction "
                "reads the sequence from its end"
            )
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise StriateError(
                f"expected a step input of shape (B, {self.input_size}), got {tuple(x_t.shape)}"
            )
        if state is None:
            state = self.init_state(x_t.shape[0], x_t.device, x_t.dtype)
        else:
            self._check_state(state, x_t.shape[0])
        step = self.cells[0].inference_step
        new_states = []
        for weights, s in zip(self._step_weights(), self._split_state(state), strict=True):
            x_t, s = step(x_t, s, *weights)
            new_states.append(s)
        return x_t, self._join_state(new_states)

    def stepper(self, state: State | None = None, batch_size: int = 1) -> Stepper:
        """A :class:`Stepper` for generating many steps: :meth:`step` without the per-call
        checks, state stacking and weight-cache lookups (unidirectional layers only)."""
        if self.bidirectional:
            raise StriateError("stepper() needs a unidirectional layer")
        if state is None:
            state = self.init_state(batch_size)
        else:
            self._check_state(state, _batch_of(state))
        return Stepper(self, self._split_state(state), self._step_weights())

    def _step_weights(self) -> list[tuple[Tensor | None, ...]]:
        """Per-layer inference weights for :meth:`step`, cached until a parameter changes."""
        # A parameter's storage changes with .to(...), its version with every in-place update
        # (optimizer steps, load_state_dict), so this key is stale exactly when the weights are.
        # Parameters made under inference_mode have no version: for them only loading a
        # state dict (see __init__) or moving them clears the cache.
        key = tuple(
            (p.data_ptr(), -1 if p.is_inference() else p._version)
            for cell in self.cells
            for p in cell._parameters.values()
            if p is not None
        )
        if self._step_cache is None or self._step_cache[0] != key:
            weights = [cell.inference_weights() for cell in self.cells]
            self._step_cache = (key, weights)
        return self._step_cache[1]

    # ------------------------------------------------------------------------- torch

    @classmethod
    def from_torch(cls, module: nn.Module, impl: str = "auto") -> Recurrent:
        """A ``Recurrent`` with the weights of a ``torch.nn.LSTM`` / ``GRU`` / ``RNN(tanh)``.

        ``nn.GRU`` becomes the ``"gru_cudnn"`` cell (torch's GRU is not the lecture's). The
        result is batch-first whatever ``module.batch_first`` says, and lives on the
        module's device and dtype.
        """
        if isinstance(module, nn.LSTM):
            if module.proj_size:
                raise StriateError("LSTMs with proj_size > 0 are not supported")
            cell = "lstm"
        elif isinstance(module, nn.GRU):
            cell = "gru_cudnn"
        elif isinstance(module, nn.RNN):
            if module.nonlinearity != "tanh":
                raise StriateError("only tanh RNNs match the lecture's simple RNN")
            cell = "rnn"
        else:
            raise StriateError(f"cannot convert {type(module).__name__}; expected nn.LSTM/GRU/RNN")
        layer = cls(
            cell,
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.dropout,
            module.bidirectional,
            module.bias,
            impl,
        )
        ref = module.weight_hh_l0
        layer.to(device=ref.device, dtype=ref.dtype)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if module.bias else 2]
        with torch.no_grad():
            for k, cell_module in enumerate(layer.cells):
                layer_index, direction = divmod(k, layer.num_directions)
                suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
                for name in names:
                    getattr(cell_module, name).copy_(getattr(module, name + suffix))
        return layer


def _batch_of(state: State) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]
