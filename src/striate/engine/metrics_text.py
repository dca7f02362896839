"""Metrics of generated text: corpus BLEU through sacreBLEU.

:func:`corpus_bleu` is the machine-translation figure: sacreBLEU's default settings (cased,
13a tokenization, exponential smoothing; Post 2018) on detokenized text, so the number
compares with published ones. :func:`translation_bleu` is what a translation run reports:
that cased figure with its sacreBLEU signature (``nrefs:1|case:mixed|eff:no|tok:13a|
smooth:exp|version:2.x``), and beside it, labelled ``bleu_lowercase`` with its own signature
(``case:lc``), the case-insensitive figure: a model trained on lower-cased text loses every
capital in the cased one. :func:`bleu_1_to_4` gives the cumulative BLEU-1..4 that captioning
papers report (BLEU-n: the geometric mean of the 1..n-gram precisions times the brevity
penalty):

    BLEU-n = BP · exp( (1/n) Σ_{k=1..n} log p_k ),   BP = min(1, exp(1 - r / c)).

References are given per hypothesis: ``references[i]`` is the list of (one or more)
reference strings of ``hypotheses[i]``; items may have different numbers of references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU

from striate.errors import StriateError


def _reference_streams(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> list[list[str | None]]:
    """Per-hypothesis reference lists → sacreBLEU's reference streams (None where an item has
    fewer references than the most any item has)."""
    if len(hypotheses) != len(references):
        raise StriateError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        raise StriateError("BLEU needs at least one hypothesis")
    for refs in references:
        if isinstance(refs, str) or len(refs) == 0:
            raise StriateError("each hypothesis needs a list of one or more reference strings")
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], lowercase: bool = False
) -> float:
    """Corpus BLEU (0-100) with sacreBLEU's standard settings (13a tokenization); with
    ``lowercase`` case-insensitive (sacreBLEU's ``-lc``, for models trained on lower case)."""
    return bleu_report(hypotheses, references, lowercase)["bleu"]


def bleu_report(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], lowercase: bool = False
) -> dict[str, Any]:
    """:func:`corpus_bleu` with its parts: ``bleu``, the 1..4-gram ``precisions``, the
    ``brevity_penalty``, the hypothesis and reference lengths and sacreBLEU's ``signature``."""
    streams = _reference_streams(hypotheses, references)
    metric = BLEU(lowercase=lowercase)
    score = metric.corpus_score(list(hypotheses), streams)
    return {
        "bleu": float(score.score),
        "precisions": [float(p) for p in score.precisions],
        "brevity_penalty": float(score.bp),
        "hyp_length": int(score.sys_len),
        "ref_length": int(score.ref_len),
        "signature": str(metric.get_signature()),
    }


def translation_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """The cased sacreBLEU report of :func:`bleu_report` (``bleu``, its parts, ``signature``)
    with the case-insensitive figure beside it, labelled: ``bleu_lowercase`` and
    ``signature_lowercase``.

    The headline ``bleu`` is always the cased one, the figure the field publishes, whatever
    case the model was trained on."""
    cased = bleu_report(hypotheses, references)
    lower = bleu_report(hypotheses, references, lowercase=True)
    return {**cased, "bleu_lowercase": lower["bleu"], "signature_lowercase": lower["signature"]}


def bleu_1_to_4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Cumulative BLEU-1..4 (0-100) as ``{"bleu1": ..., "bleu4": ...}``."""
    streams = _reference_streams(hypotheses, references)
    return {
        f"bleu{n}": float(BLEU(max_ngram_order=n).corpus_score(list(hypotheses), streams).score)
        for n in range(1, 5)
    }
