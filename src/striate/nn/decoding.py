"""Decoding a sequence from any autoregressive model: greedy and beam search.

The functions know nothing of a model. A model hands them a *step* and an initial *state*:

    ``step(tokens: LongTensor (N,), state) -> (log_probs (N, V), state)``

``tokens`` holds the last token of each of N running hypotheses (``bos_id`` at first) and
``log_probs`` the log-probabilities of the next one. ``state`` is any nesting of tuples,
lists and dicts of tensors whose dim 0 is the hypothesis dimension N (an LSTM's
``(layers, N, H)`` state is transposed by its model to ``(N, layers, H)``); the decoder
reorders it with :func:`reorder_state` when beams are pruned and expanded. ``None`` leaves
and non-tensor leaves pass through unchanged.

Beam search keeps the ``beam_size`` best partial hypotheses per item; a hypothesis whose
``eos_id`` continuation is among the ``beam_size`` best candidates of a step is set aside as
finished (so beam 1 is exactly greedy decoding). Finished hypotheses are compared by their
log-probability divided by the length penalty of Wu et al. (2016),

    lp(Y) = ((5 + |Y|) / 6) ** alpha,

where |Y| counts the generated tokens including the end token (``alpha = 0``: the raw sum of
log-probabilities). An item stops when it holds ``beam_size`` finished hypotheses, or when no
running hypothesis can still beat its best finished one (log-probabilities only fall as a
hypothesis grows, and lp is largest at ``max_len``, so ``best_running / lp(max_len)`` bounds
every continuation). Hypotheses still running after ``max_len`` tokens are finished as they
are (without an end token).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from striate.errors import StriateError, not_finite_error

DecodeStep = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def reorder_state(state: Any, index: torch.Tensor) -> Any:
    """``state`` with every tensor's dim 0 replaced by ``tensor.index_select(0, index)``."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, tuple):
        return tuple(reorder_state(s, index) for s in state)
    if isinstance(state, list):
        return [reorder_state(s, index) for s in state]
    if isinstance(state, dict):
        return {k: reorder_state(v, index) for k, v in state.items()}
    return state


def _tensors(state: Any):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for s in state:
            yield from _tensors(s)
    elif isinstance(state, dict):
        for s in state.values():
            yield from _tensors(s)


def _state_device(state: Any) -> torch.device:
    return next((t.device for t in _tensors(state)), torch.device("cpu"))


def _check(batch_size: int, max_len: int) -> None:
    if batch_size < 1:
        raise StriateError("decoding needs at least one item")
    if max_len < 1:
        raise StriateError("the maximum decoded length must be at least 1")


@torch.no_grad()
def greedy_decode(
    step: DecodeStep, state: Any, batch_size: int, bos_id: int, eos_id: int, max_len: int
) -> list[list[int]]:
    """The most likely next token at every step, for each of ``batch_size`` items.

    Returns the token ids of each item without bos/eos (at most ``max_len`` of them).
    """
    _check(batch_size, max_len)
    device = _state_device(state)
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    emitted = []
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        if bool(log_probs.isnan().any()):  # the argmax of NaNs is an arbitrary token
            raise not_finite_error()
        tokens = log_probs.argmax(-1)
        emitted.append(tokens)
        done |= tokens == eos_id
        if bool(done.all()):
            break
    out = []
    for row in torch.stack(emitted, 1).tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


def length_penalty_factor(length: int, alpha: float) -> float:
    """Wu et al. (2016): ``((5 + length) / 6) ** alpha``."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(
    step: DecodeStep,
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len: int = 50,
    length_penalty: float = 0.6,
    return_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """The best hypothesis per item found by beam search (see the module docstring).

    Args:
        step, state: the model's decode step and its state for ``batch_size`` rows; the state
            is expanded to ``batch_size * beam_size`` rows here (item-major: rows
            ``b * beam_size ... b * beam_size + beam_size - 1`` belong to item b).
        bos_id, eos_id: the start token fed first, and the token that ends a hypothesis.
        beam_size: hypotheses kept per item (1 is greedy decoding).
        max_len: the most tokens generated per hypothesis, the end token included.
        length_penalty: alpha of the length normalization (0: raw log-probability sums).
        return_scores: also return each best hypothesis's normalized score.

    Returns:
        Token ids per item without bos/eos; with ``return_scores``, ``(ids, scores)``.
    """
    _check(batch_size, max_len)
    if beam_size < 1:
        raise StriateError("the beam size must be at least 1")
    if length_penalty < 0:
        raise StriateError("the length penalty must be non-negative")
    B, K = batch_size, beam_size
    device = _state_device(state)
    state = reorder_state(state, torch.arange(B, device=device).repeat_interleave(K))
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = -math.inf  # all beams start identical: expand only the first
    history = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    bound_lp = length_penalty_factor(max_len, length_penalty)
    rows = (torch.arange(B, device=device) * K).unsqueeze(1)

    for length in range(1, max_len + 1):
        log_probs, state = step(tokens, state)
        if bool(log_probs.isnan().any()):  # -inf is a ruled-out token; NaN ends no hypothesis
            raise not_finite_error()
        V = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs.float().view(B, K, V)).view(B, K * V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)
        top_beam, top_token = top_index // V, top_index % V
        is_eos = top_token == eos_id

        # hypotheses that end among the K best candidates are set aside (as in beam 1 =
        # greedy: an end token that is not among them does not stop the search)
        lp = length_penalty_factor(length, length_penalty)
        ended = (is_eos & torch.isfinite(top_scores))[:, :K].nonzero().tolist()
        if ended:
            ended_scores = top_scores.tolist()
            ended_rows = (rows + top_beam).tolist()
            for b, j in ended:
                if not done[b]:
                    prefix = history[ended_rows[b][j]].tolist()
                    finished[b].append((ended_scores[b][j] / lp, prefix))

        # the K best hypotheses that go on (at most K of the 2K candidates are ends)
        keep = torch.sort(is_eos.to(torch.int8), dim=1, stable=True).indices[:, :K]
        scores = top_scores.gather(1, keep)
        source = (rows + top_beam.gather(1, keep)).view(-1)
        tokens = top_token.gather(1, keep).view(-1)
        history = torch.cat([history.index_select(0, source), tokens.unsqueeze(1)], 1)
        state = reorder_state(state, source)

        best_running = scores.max(1).values.tolist()
        for b in range(B):
            if done[b] or not finished[b]:
                continue
            best = max(s for s, _ in finished[b])
            if len(finished[b]) >= K or best >= best_running[b] / bound_lp:
                done[b] = True
        if all(done):
            break

    final_scores = scores.tolist()
    for b in range(B):  # still running after max_len tokens: finished without an end token
        if not done[b]:
            for k in range(K):
                if math.isfinite(final_scores[b][k]):
                    finished[b].append((final_scores[b][k] / bound_lp, history[b * K + k].tolist()))
    best_ids, best_scores = [], []
    for b in range(B):
        score, ids = max(finished[b], key=lambda f: f[0])
        best_ids.append(ids)
        best_scores.append(score)
    return (best_ids, best_scores) if return_scores else best_ids


def decode(
    step: DecodeStep,
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam: int = 1,
    max_len: int = 50,
    length_penalty: float = 0.6,
    scores: bool = False,
) -> tuple[list[list[int]], list[float | None]]:
    """(token ids, scores) per item: :func:`greedy_decode` for beam 1 without ``scores``
    (scores then None), else :func:`beam_search` with its normalized scores (beam 1 is the
    same hypothesis as greedy). The one place a task chooses between the two."""
    if beam == 1 and not scores:
        return greedy_decode(step, state, batch_size, bos_id, eos_id, max_len), [None] * batch_size
    ids, found = beam_search(
        step, state, batch_size, bos_id, eos_id, beam, max_len, length_penalty, return_scores=True
    )
    return ids, list(found)
