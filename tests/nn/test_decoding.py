"""Greedy and beam-search decoding: beam 1 is greedy, a full-width beam is exhaustive search."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from striate.errors import StriateError
from striate.nn.decoding import (
    beam_search,
    greedy_decode,
    length_penalty_factor,
    reorder_state,
)

BOS, EOS = 0, 1


class TinyModel(nn.Module):
    """A random GRU language model over V tokens; its state is nested to exercise reordering."""

    def __init__(self, vocab: int = 4, hidden: int = 8, seed: int = 0, sharpness: float = 3.0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)
        self.sharpness = sharpness

    def initial(self, batch: int, seed: int = 1):
        h = torch.randn(batch, 8, generator=torch.Generator().manual_seed(seed))
        return {"h": (h,), "steps": [torch.zeros(batch, 1)]}

    def step(self, tokens, state):
        h = self.cell(self.embed(tokens), state["h"][0])
        logits = self.out(h) * self.sharpness
        return torch.log_softmax(logits, -1), {"h": (h,), "steps": [state["steps"][0] + 1]}


def exhaustive_best(model, state, max_len, vocab, alpha):
    """Score every sequence the search can produce and return the best (ids, score)."""
    best = (None, -float("inf"))
    others = [t for t in range(vocab) if t != EOS]
    for length in range(max_len + 1):
        for prefix in itertools.product(others, repeat=length):
            ended = length < max_len
            fed = [BOS, *prefix]
            total, s = 0.0, state
            for position, token in enumerate([*prefix, EOS] if ended else prefix):
                log_probs, s = model.step(torch.tensor([fed[position]]), s)
                total += float(log_probs[0, token].detach())
            steps = length + 1 if ended else max_len
            score = total / length_penalty_factor(steps, alpha)
            if score > best[1]:
                best = (list(prefix), score)
    return best


def test_reorder_state_selects_rows_of_every_nested_tensor():
    state = {"a": (torch.arange(3), [torch.arange(6).view(3, 2)]), "n": None, "k": 5}
    out = reorder_state(state, torch.tensor([2, 2, 0]))
    assert out["a"][0].tolist() == [2, 2, 0] and out["a"][1][0].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert out["n"] is None and out["k"] == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    model = TinyModel(vocab=6, seed=seed, sharpness=1.5)
    state = model.initial(4, seed)
    greedy = greedy_decode(model.step, state, 4, BOS, EOS, max_len=12)
    beam = beam_search(model.step, state, 4, BOS, EOS, beam_size=1, max_len=12)
    assert beam == greedy


@pytest.mark.parametrize(("seed", "alpha"), [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.6), (4, 1.0)])
def test_full_width_beam_finds_the_exhaustive_optimum(seed, alpha):
    vocab, max_len = 4, 4
    model = TinyModel(vocab=vocab, seed=seed, sharpness=0.7)
    state = model.initial(2, seed)
    ids, scores = beam_search(
        model.step, state, 2, BOS, EOS, beam_size=vocab**max_len, max_len=max_len,
        length_penalty=alpha, return_scores=True,
    )  # fmt: skip
    for b in range(2):
        item_state = reorder_state(state, torch.tensor([b]))
        best_ids, best_score = exhaustive_best(model, item_state, max_len, vocab, alpha)
        assert scores[b] == pytest.approx(best_score, abs=1e-4)
        assert ids[b] == best_ids


def test_eos_ends_a_hypothesis_and_is_not_returned():
    def step(tokens, state):  # emits 5, 6, then eos; state counts the steps
        log_probs = torch.full((len(tokens), 8), -10.0)
        target = torch.tensor([5, 6, EOS, EOS])[state.clamp(max=3)]
        log_probs[torch.arange(len(tokens)), target] = 0.0
        return log_probs, state + 1

    start = torch.zeros(3, dtype=torch.long)
    assert greedy_decode(step, start, 3, BOS, EOS, max_len=10) == [[5, 6]] * 3
    assert beam_search(step, start, 3, BOS, EOS, beam_size=4, max_len=10) == [[5, 6]] * 3
    assert greedy_decode(step, start, 1, BOS, EOS, max_len=1) == [[5]]
    assert beam_search(step, start[:1], 1, BOS, EOS, beam_size=3, max_len=2) == [[5, 6]]


def test_batched_beam_search_equals_one_item_at_a_time():
    model = TinyModel(vocab=7, seed=5, sharpness=1.0)
    state = model.initial(3, 9)
    batched = beam_search(model.step, state, 3, BOS, EOS, beam_size=3, max_len=8)
    for b in range(3):
        one = reorder_state(state, torch.tensor([b]))
        assert beam_search(model.step, one, 1, BOS, EOS, beam_size=3, max_len=8)[0] == batched[b]


def test_length_penalty_prefers_longer_hypotheses():
    # the model ends with probability 0.2 at every step, else emits token 2
    def step(tokens, state):
        log_probs = torch.full((len(tokens), 4), -30.0)
        log_probs[:, EOS] = torch.tensor(0.2).log()
        log_probs[:, 2] = torch.tensor(0.8).log()
        return log_probs, state

    start = torch.zeros(1)
    assert beam_search(step, start, 1, BOS, EOS, beam_size=2, max_len=5, length_penalty=0) == [[]]
    longer = beam_search(step, start, 1, BOS, EOS, beam_size=2, max_len=5, length_penalty=2.0)
    assert len(longer[0]) > 0


def test_bad_arguments():
    model = TinyModel()
    with pytest.raises(StriateError):
        beam_search(model.step, model.initial(1), 1, BOS, EOS, beam_size=0)
    with pytest.raises(StriateError):
        greedy_decode(model.step, model.initial(1), 1, BOS, EOS, max_len=0)
