"""Truncated backpropagation through time, TBPTT(k1, k2), as a step function of the engine.

The lecture: "(1) Only run backpropagation every k1 time steps ... (2) Limit number of times
(k2) unfolded." Each training batch holds the next k1 tokens of every stream; the hidden
state carries over from the previous batch (stateful training), and after the forward pass
over those k1 tokens the error of their outputs is propagated back through the last k2 time
steps: the k1 new ones and k2 - k1 older ones.

Cost: every token goes through exactly one forward pass. For k1 = k2 the state is simply
detached at each batch boundary and the backward covers the k1 new steps. For k1 < k2 the
graphs of the older steps are kept (split into pieces of g = gcd(k1, k2) steps whose input
state is a separate leaf) and the backward walks them by hand, newest piece first, for
exactly k2 steps: the minimum the algorithm allows. Because the optimizer changes the weights
between updates, each batch runs on a snapshot of the parameters, so the kept graphs stay
valid; gradients reaching a snapshot are added to the live parameters' ``.grad``.

The model is any module called as ``model(inputs, state) -> (logits, state)`` with
``state`` None (zeros), a tensor, or a tuple of tensors (LSTM's ``(h, c)``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from striate.engine.distributed import unwrap
from striate.engine.steps import StepOutput
from striate.errors import StriateError
from striate.nn.recurrent import detach_state

State = torch.Tensor | tuple[torch.Tensor, ...] | None


def _tensors(state: State) -> tuple[torch.Tensor, ...]:
    if state is None:
        return ()
    return state if isinstance(state, tuple) else (state,)


def _like(state: State, tensors: tuple[torch.Tensor, ...]) -> State:
    return tensors if isinstance(state, tuple) else tensors[0]


def _to(state: State, device: torch.device) -> State:
    if state is None:
        return None
    return _like(state, tuple(t.to(device) for t in _tensors(state)))


def _state_from(tensors: dict[str, torch.Tensor], prefix: str) -> State:
    """A state saved by ``TBPTTStep.state_dict`` under ``prefix`` (None if there is none)."""
    if prefix + "tuple" not in tensors:
        return None
    parts = []
    while f"{prefix}{len(parts)}" in tensors:
        parts.append(tensors[f"{prefix}{len(parts)}"])
    return tuple(parts) if int(tensors[prefix + "tuple"]) else parts[0]


def _leaf(state: State) -> State:
    if state is None:
        return None
    return _like(state, tuple(t.detach().requires_grad_() for t in _tensors(state)))


@dataclass(eq=False)
class _Batch:
    """What recomputes one batch's forward pass exactly: its tokens, the state it started
    from, the weights it ran on and the RNG states at its start (dropout)."""

    inputs: torch.Tensor
    state_in: State
    params: dict[str, torch.Tensor]
    rng: torch.Tensor
    cuda_rng: torch.Tensor | None = None


@dataclass
class _Piece:
    """g consecutive time steps: their input-state leaf, output state and weight snapshot."""

    leaf: State
    out_state: State
    params: dict[str, torch.Tensor]
    logits: torch.Tensor | None = None  # only while its own batch is being updated
    batch: _Batch | None = None  # where the piece came from (to rebuild it after a resume)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every token, computed in at least float32."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def check_window(k1: int, k2: int) -> tuple[int, int]:
    """TBPTT's (k1, k2), validated: 0 < k1 <= k2."""
    if k1 <= 0 or k2 <= 0:
        raise StriateError(f"TBPTT needs k1 > 0 and k2 > 0, got k1={k1}, k2={k2}")
    if k1 > k2:
        raise StriateError(f"TBPTT needs k1 <= k2, got k1={k1} > k2={k2}")
    return k1, k2


def sequence_sums(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summed cross-entropy (nats), correct predictions and token count of a batch."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    return {
        "loss": F.cross_entropy(flat_logits, flat_targets, reduction="sum"),
        "correct": (flat_logits.argmax(-1) == flat_targets).sum(),
        "count": torch.full((), flat_targets.numel(), device=targets.device),
    }


class TBPTTStep:
    """Stateful next-token training with truncated BPTT(k1, k2); see the module docstring.

    Args:
        k1: time steps between updates (the batch's sequence length).
        k2: time steps each update backpropagates through (k2 >= k1).
    """

    def __init__(self, k1: int, k2: int | None = None) -> None:
        self.k1, self.k2 = check_window(k1, k1 if k2 is None else k2)
        self.piece = math.gcd(self.k1, self.k2)
        self.reset()

    def reset(self) -> None:
        """Forget the carried state (a new pass over the data begins)."""
        self.state: State = None
        self.eval_state: State = None
        self.history: deque[_Piece] = deque(maxlen=(self.k2 - self.k1) // self.piece)
        self._replay: tuple[list[_Batch], int] | None = None

    def reset_eval(self) -> None:
        """Forget the evaluation state only (a validation pass mid-epoch leaves training's)."""
        self.eval_state = None

    # -----------------------------------------------------------------------------------------
    # exact resume: what a checkpoint keeps of the carried state

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The carried state as named tensors, for the checkpoint's ``step_state``.

        ``state.I`` are the carried hidden state's tensors (``state.tuple`` says whether it
        is a tuple, as LSTM's ``(h, c)``). For k1 < k2 the graphs of the last k2 - k1 steps
        cannot be saved, so what rebuilds them is: for each batch they came from, its
        tokens, starting state, weight snapshot and RNG state (``replay.J.*``), and how
        many of the rebuilt pieces the window keeps (``replay.pieces``).
        """
        tensors: dict[str, torch.Tensor] = {}
        if self.state is not None:
            tensors["state.tuple"] = torch.tensor(int(isinstance(self.state, tuple)))
            tensors.update({f"state.{i}": t for i, t in enumerate(_tensors(self.state))})
        batches = list(dict.fromkeys(p.batch for p in self.history if p.batch is not None))
        if self._replay is not None:  # restored but not yet rebuilt: pass it on unchanged
            batches, pieces = self._replay
        else:
            pieces = len(self.history)
        if batches:
            tensors["replay.pieces"] = torch.tensor(pieces)
        for j, batch in enumerate(batches):
            tensors[f"replay.{j}.inputs"] = batch.inputs
            tensors[f"replay.{j}.rng"] = batch.rng
            if batch.cuda_rng is not None:
                tensors[f"replay.{j}.cuda_rng"] = batch.cuda_rng
            if batch.state_in is not None:
                tensors[f"replay.{j}.state.tuple"] = torch.tensor(
                    int(isinstance(batch.state_in, tuple))
                )
            for i, t in enumerate(_tensors(batch.state_in)):
                tensors[f"replay.{j}.state.{i}"] = t
            for name, param in batch.params.items():
                tensors[f"replay.{j}.param.{name}"] = param.detach()
        return tensors

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` saved; the k1 < k2 graphs are rebuilt at the next
        training batch (on its device, inside the loop's autocast)."""
        self.reset()
        self.state = _state_from(tensors, "state.")
        count = int(tensors["replay.pieces"]) if "replay.pieces" in tensors else 0
        batches: list[_Batch] = []
        while f"replay.{len(batches)}.inputs" in tensors:
            key = f"replay.{len(batches)}."
            params = {
                k[len(key) + len("param.") :]: v
                for k, v in tensors.items()
                if k.startswith(key + "param.")
            }
            batches.append(
                _Batch(
                    tensors[key + "inputs"],
                    _state_from(tensors, key + "state."),
                    params,
                    tensors[key + "rng"],
                    tensors.get(key + "cuda_rng"),
                )
            )
        self._replay = (batches, count) if batches else None

    def _rebuild(self, model: nn.Module, device: torch.device) -> None:
        """Recompute the kept pieces' graphs from the saved batches, bit for bit: the same
        tokens, starting state, weights and RNG state give the same forward pass."""
        assert self._replay is not None
        batches, count = self._replay
        self._replay = None
        module = unwrap(model)
        live = dict(module.named_parameters())
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        pieces: list[_Piece] = []
        for saved in batches:
            batch = _Batch(
                saved.inputs.to(device),
                _to(saved.state_in, device),
                {
                    n: t.to(device).requires_grad_(live[n].requires_grad)
                    for n, t in saved.params.items()
                },
                saved.rng,
                saved.cuda_rng,
            )
            torch.set_rng_state(batch.rng)
            if batch.cuda_rng is not None and device.type == "cuda":
                torch.cuda.set_rng_state(batch.cuda_rng, device)
            state = batch.state_in
            for chunk in batch.inputs.split(self.piece, dim=1):
                leaf = _leaf(state)
                _, state = functional_call(module, batch.params, (chunk, leaf))
                pieces.append(_Piece(leaf, state, batch.params, None, batch))
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)
        self.history.extend(pieces[len(pieces) - count :])

    # -----------------------------------------------------------------------------------------
    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        inputs, targets = batch  # (B, k1) each
        self.state = _to(self.state, inputs.device)  # restored from a checkpoint: on the CPU
        if self._replay is not None:
            self._rebuild(model, inputs.device)
        if self.k1 == self.k2:
            logits, state = model(inputs, detach_state(self.state))
            self.state = detach_state(state)
            sums = sequence_sums(logits.detach(), targets)
            loss = token_loss(logits, targets)
            return StepOutput(loss, sums)
        return self._train_chained(model, inputs, targets)

    def _train_chained(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> StepOutput:
        module = unwrap(model)
        live = dict(module.named_parameters())
        snapshot = {n: p.detach().clone().requires_grad_(p.requires_grad) for n, p in live.items()}
        cuda = inputs.device.type == "cuda"
        record = _Batch(
            inputs,
            self.state,
            snapshot,
            torch.get_rng_state(),
            torch.cuda.get_rng_state(inputs.device) if cuda else None,
        )
        pieces, state = [], self.state
        for chunk in inputs.split(self.piece, dim=1):
            leaf = _leaf(state)
            logits, state = functional_call(module, snapshot, (chunk, leaf))
            pieces.append(_Piece(leaf, state, snapshot, logits, record))
        self.state = detach_state(state)
        logits = torch.cat([p.logits for p in pieces], dim=1)
        loss = token_loss(logits, targets)
        sums = sequence_sums(logits.detach(), targets)

        def backward(scale: Callable[[torch.Tensor], torch.Tensor]) -> None:
            logit_grads = torch.autograd.grad(scale(loss), [p.logits for p in pieces])
            window = list(self.history) + pieces  # oldest first; at most k2 steps
            grad_state: tuple[torch.Tensor, ...] = ()
            for index in range(len(window) - 1, -1, -1):
                piece = window[index]
                outputs, grads = [], []
                if piece.logits is not None:
                    outputs.append(piece.logits)
                    grads.append(logit_grads[index - len(self.history)])
                if grad_state:
                    outputs.extend(_tensors(piece.out_state))
                    grads.extend(grad_state)
                names = [n for n, p in piece.params.items() if p.requires_grad]
                leaves = list(_tensors(piece.leaf)) if index > 0 else []
                found = torch.autograd.grad(
                    outputs,
                    [piece.params[n] for n in names] + leaves,
                    grads,
                    retain_graph=True,
                    allow_unused=True,
                )
                for name, grad in zip(names, found[: len(names)], strict=True):
                    if grad is not None:
                        param = live[name]
                        param.grad = grad if param.grad is None else param.grad + grad
                grad_state = tuple(
                    torch.zeros_like(t) if g is None else g
                    for t, g in zip(leaves, found[len(names) :], strict=True)
                )
                if not grad_state:
                    break
            for piece in pieces:
                piece.logits = None  # older pieces only pass the state's gradient on
            self.history.extend(pieces)
            _average_across_processes(live.values())

        return StepOutput(loss, sums, backward)

    # -----------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        inputs, targets = batch
        logits, state = model(inputs, self.eval_state)
        self.eval_state = detach_state(state)
        return sequence_sums(logits, targets)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1)
        loss = sums["loss"] / count
        return {"loss": loss, "bpc": loss / math.log(2), "accuracy": sums["correct"] / count}


def _average_across_processes(params: Any) -> None:
    """DDP's gradient hooks never see the snapshots, so average by hand under torchrun."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= dist.get_world_size()
