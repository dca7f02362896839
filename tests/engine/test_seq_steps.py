"""Teacher forcing: the loss over non-padding tokens, the ratio schedule, and learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.engine.loop import EngineConfig, fit
from striate.engine.seq_steps import TeacherForcedStep, TeacherForcingSchedule
from striate.errors import StriateError

PAD, BOS, EOS = 0, 1, 2


class Echo(nn.Module):
    """Predicts the next target from the previous one and a per-sentence input embedding."""

    def __init__(self, vocab=8, hidden=16):
        super().__init__()
        self.src = nn.Embedding(vocab, hidden)
        self.tgt = nn.Embedding(vocab, hidden)
        self.out = nn.Linear(hidden, vocab)
        self.ratios: list[float] = []

    def forward(self, source, targets_in, teacher_forcing=1.0):
        self.ratios.append(teacher_forcing)
        hidden = torch.tanh(self.src(source).unsqueeze(1) + self.tgt(targets_in))
        return self.out(hidden)


def test_loss_is_the_mean_over_real_target_tokens():
    torch.manual_seed(0)
    model = Echo()
    source = torch.tensor([3, 4])
    targets = torch.tensor([[BOS, 5, 6, EOS], [BOS, 7, EOS, PAD]])
    step = TeacherForcedStep(pad_id=PAD)
    out = step.train(model, (source, targets))
    logits = model(source, targets[:, :-1])
    flat_logits, flat_targets = logits.reshape(-1, 8), targets[:, 1:].reshape(-1)
    real = flat_targets != PAD
    expected = F.cross_entropy(flat_logits[real], flat_targets[real])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.sums["count"].item() == 5
    summary = step.summarize({k: float(v) for k, v in out.sums.items()})
    assert summary["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert summary["perplexity"] == pytest.approx(math.exp(expected.item()), rel=1e-5)
    evaluated = step.evaluate(model, (source, targets))
    assert evaluated["loss"].item() == pytest.approx(5 * expected.item(), rel=1e-5)
    smoothed = TeacherForcedStep(pad_id=PAD, label_smoothing=0.1).train(model, (source, targets))
    assert smoothed.loss.item() != pytest.approx(out.loss.item(), rel=1e-6)  # smoothing trained
    assert smoothed.sums["loss"].item() == pytest.approx(out.sums["loss"].item(), rel=1e-5)


def test_schedules():
    assert TeacherForcingSchedule()(10_000) == 1.0
    linear = TeacherForcingSchedule("linear", start=1.0, end=0.5, steps=100)
    assert [linear(s) for s in (0, 50, 100, 500)] == pytest.approx([1.0, 0.75, 0.5, 0.5])
    sigmoid = TeacherForcingSchedule("inverse_sigmoid", k=10, end=0.1)
    values = [sigmoid(s) for s in (0, 20, 40, 100, 10**6)]
    assert values[0] == pytest.approx(10 / 11) and values == sorted(values, reverse=True)
    assert values[-1] == 0.1
    assert TeacherForcingSchedule("exponential", k=0.5)(3) == pytest.approx(0.125)
    with pytest.raises(StriateError):
        TeacherForcingSchedule("cosine")
    with pytest.raises(StriateError):
        TeacherForcingSchedule("exponential", k=2.0)


def test_the_step_counts_its_calls_and_passes_the_ratio():
    model = Echo()
    batch = (torch.tensor([3]), torch.tensor([[BOS, 5, EOS]]))
    schedule = TeacherForcingSchedule("linear", start=1.0, end=0.0, steps=4)
    step = TeacherForcedStep(pad_id=PAD, teacher_forcing=schedule, start_step=2)
    for _ in range(3):
        step.train(model, batch)
    step.evaluate(model, batch)
    assert model.ratios == pytest.approx([0.5, 0.25, 0.0, 1.0]) and step.steps_done == 5


def test_fit_learns_a_lookup_translation():
    torch.manual_seed(0)
    pairs = [(w, [BOS, 3 + (w + 2) % 5, EOS]) for w in range(3, 8)] * 20

    def collate(items):
        targets, _ = pad_sequences([t for _, t in items], PAD)
        return torch.tensor([s for s, _ in items]), targets

    batches = SequenceBatches(pairs, [3] * len(pairs), collate, 10, seed=0)
    config = EngineConfig(
        epochs=3, batch_size=10, optimizer="adam", lr=0.05, weight_decay=0.0,
        schedule="constant", progress=False, log_every=10,
    )  # fmt: skip
    result = fit(Echo(), TeacherForcedStep(PAD), batches, batches, config)
    assert result.final["accuracy"] == 1.0 and result.final["perplexity"] < 1.2
