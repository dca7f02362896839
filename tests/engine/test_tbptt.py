"""TBPTT(k1, k2) gradients equal explicitly unrolled windows computed with plain autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.engine.tbptt import TBPTTStep
from striate.errors import StriateError

VOCAB, HIDDEN, BATCH, LENGTH = 7, 5, 3, 24


class TinyLM(nn.Module):
    """Embedding → LSTM → linear read-out: model(inputs, state) -> (logits, state)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 4)
        self.rnn = nn.LSTM(4, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, inputs, state=None):
        hidden, state = self.rnn(self.embed(inputs), state)
        return self.out(hidden), state


def _stream():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (BATCH, LENGTH + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def _explicit_grads(model, inputs, targets, t, k1, k2):
    """Gradient of the mean loss of outputs t-k1..t-1, unrolled from step t-k2 with autograd."""
    start = max(0, t - k2)
    state = None
    with torch.no_grad():
        if start > 0:
            _, state = model(inputs[:, :start])
    model.zero_grad()
    logits, _ = model(inputs[:, start:t], state)
    new = logits[:, -k1:]
    F.cross_entropy(new.reshape(-1, VOCAB), targets[:, t - k1 : t].reshape(-1)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("k1", "k2"), [(4, 4), (2, 6), (4, 6), (3, 5), (1, 4)])
def test_gradients_match_explicit_windows(k1, k2):
    torch.manual_seed(1)
    model = TinyLM().double()
    inputs, targets = _stream()
    step = TBPTTStep(k1, k2)
    for t in range(k1, LENGTH + 1, k1):
        batch = (inputs[:, t - k1 : t], targets[:, t - k1 : t])
        model.zero_grad(set_to_none=True)
        out = step.train(model, batch)
        if out.backward is None:
            out.loss.backward()
        else:
            out.backward(lambda loss: loss)
        got = {n: p.grad.clone() for n, p in model.named_parameters()}
        want = _explicit_grads(model, inputs, targets, t, k1, k2)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-12)


def test_state_carries_across_batches_and_resets():
    model = TinyLM()
    inputs, targets = _stream()
    step = TBPTTStep(4)
    step.train(model, (inputs[:, :4], targets[:, :4]))
    carried = step.state[0].clone()
    assert carried.abs().sum() > 0 and not step.state[0].requires_grad
    step.reset()
    assert step.state is None


def test_gradients_follow_weights_that_change_between_updates():
    """With a real optimizer the kept graphs use the weights of their own batch (snapshots)."""
    torch.manual_seed(2)
    model = TinyLM()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    pattern = torch.tensor([3, 1, 4, 1, 5, 6, 2])  # a repeating sequence: learnable
    tokens = pattern.repeat(BATCH, 4)[:, : LENGTH + 1]
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    step = TBPTTStep(2, 6)
    losses = []
    for _ in range(30):
        step.reset()
        for t in range(2, LENGTH + 1, 2):
            opt.zero_grad(set_to_none=True)
            out = step.train(model, (inputs[:, t - 2 : t], targets[:, t - 2 : t]))
            out.backward(lambda loss: loss)
            opt.step()
            losses.append(out.loss.item())
    assert sum(losses[-12:]) / 12 < 0.3 * sum(losses[:12]) / 12


@pytest.mark.parametrize(("k1", "k2"), [(0, 4), (5, 4), (-1, -1)])
def test_bad_k1_k2(k1, k2):
    with pytest.raises(StriateError, match="k1"):
        TBPTTStep(k1, k2)
