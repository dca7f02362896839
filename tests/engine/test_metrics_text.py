"""BLEU through sacreBLEU: hand-computed cases, per-hypothesis reference lists, and the cased
figure with its signature that a translation run reports."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU

from striate.engine.metrics_text import bleu_1_to_4, corpus_bleu, translation_bleu
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


# Multi30k-like sentences: the hypotheses of a model trained on lower-cased text
HYPS = ["a man in a blue shirt is standing on a ladder.", "two dogs play in the snow."]
REFS = ["A man in a blue shirt is standing on a ladder.", "Two dogs are playing in the snow."]


def test_translation_bleu_is_sacrebleus_default_cased_with_its_signature():
    report = translation_bleu(HYPS, [[r] for r in REFS])
    field = sacrebleu.corpus_bleu(HYPS, [REFS])  # sacreBLEU's documented default call
    assert report["bleu"] == pytest.approx(field.score)
    assert report["precisions"] == pytest.approx(field.precisions)
    parts = dict(p.split(":", 1) for p in report["signature"].split("|"))
    assert parts["nrefs"] == "1" and parts["case"] == "mixed" and parts["tok"] == "13a"
    assert parts["smooth"] == "exp" and parts["eff"] == "no"
    assert parts["version"] == sacrebleu.__version__


def test_cased_and_lowercased_bleu_differ_and_are_labelled():
    report = translation_bleu(HYPS, [[r] for r in REFS])
    lower = sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True)
    assert report["bleu_lowercase"] == pytest.approx(lower.score)
    assert "case:lc" in report["signature_lowercase"]
    assert report["bleu"] < report["bleu_lowercase"]  # every sentence-initial capital missed
    # the first sentence differs from its reference only in its first letter: of its 12
    # tokens (13a splits off the full stop) the 1..4-grams holding "a" miss, so the
    # precisions are 11/12, 10/11, 9/10, 8/9, whose geometric mean is (8/12)^(1/4)
    alone = translation_bleu(HYPS[:1], [REFS[:1]])
    assert alone["bleu_lowercase"] == pytest.approx(100.0)
    assert alone["bleu"] == pytest.approx(100 * (8 / 12) ** 0.25, abs=1e-6)
    same = translation_bleu(REFS, [[r] for r in REFS])
    assert same["bleu"] == pytest.approx(100.0) == same["bleu_lowercase"]
