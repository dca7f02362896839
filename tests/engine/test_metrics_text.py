"""BLEU through sacreBLEU: hand-computed cases and per-hypothesis reference lists."""

from __future__ import annotations

import math

import pytest
from sacrebleu.metrics import BLEU

from striate.engine.metrics_text import bleu_1_to_4, corpus_bleu
from striate.errors import StriateError


def test_identical_text_scores_100():
    hyps = ["A man is riding a bike.", "Two dogs play in the snow."]
    assert corpus_bleu(hyps, [[h] for h in hyps]) == pytest.approx(100.0)
    assert bleu_1_to_4(hyps, [[h] for h in hyps]) == pytest.approx(
        {"bleu1": 100.0, "bleu2": 100.0, "bleu3": 100.0, "bleu4": 100.0}
    )


def test_a_case_computed_by_hand():
    # 1..4-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    hyp, ref = ["the cat sat on the mat"], [["the cat sat on a mat"]]
    precisions = [5 / 6, 3 / 5, 2 / 4, 1 / 3]
    expected = {
        f"bleu{n}": 100 * math.exp(sum(math.log(p) for p in precisions[:n]) / n)
        for n in range(1, 5)
    }
    assert corpus_bleu(hyp, ref) == pytest.approx(expected["bleu4"], abs=1e-6)
    assert bleu_1_to_4(hyp, ref) == pytest.approx(expected, abs=1e-6)
    # a hypothesis of 6 words against a reference of 8: brevity penalty exp(1 - 8/6)
    short = corpus_bleu(["the cat sat on the mat"], [["the cat sat on the red mat today"]])
    p = [6 / 6, 4 / 5, 3 / 4, 2 / 3]
    bp = math.exp(1 - 8 / 6)
    assert short == pytest.approx(100 * bp * math.exp(sum(map(math.log, p)) / 4), abs=1e-6)


def test_varying_numbers_of_references_match_sacrebleu():
    hyps = ["a dog runs on the grass .", "a man rides a red bike", "two kids play"]
    refs = [
        ["a dog runs on grass .", "the dog is running on the grass ."],
        ["a man is riding a bike"],
        ["two children are playing", "two kids play outside", "kids playing"],
    ]
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(3)]
    assert corpus_bleu(hyps, refs) == pytest.approx(BLEU().corpus_score(hyps, streams).score)
    one_ref = corpus_bleu(hyps, [r[:1] for r in refs])
    assert corpus_bleu(hyps, refs) > one_ref


def test_bad_references():
    with pytest.raises(StriateError):
        corpus_bleu(["a"], [])
    with pytest.raises(StriateError):
        corpus_bleu(["a"], ["a"])  # a string, not a list of references
    with pytest.raises(StriateError):
        corpus_bleu([], [])
