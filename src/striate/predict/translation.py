"""Translation: sentences in, translations with their beam scores out."""

from __future__ import annotations

import math
from typing import Any

import torch

from striate.apps.translation import TASK, translator_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint
from striate.data.words import detokenize, tokenize
from striate.errors import StriateError, not_finite_error
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import Predictor, as_list, check_float, check_int, check_text, no_unknown

DEFAULTS = {"beam": 5, "length_penalty": 0.6, "max_length": None, "attention": None}


@register_predictor
class TranslationPredictor(Predictor):
    """Beam search (beam 1: greedy) with Wu et al.'s length normalization: the best
    hypothesis maximises log P(y|x) / lp(y), lp(y) = ((5 + |y|) / 6)^alpha."""

    kind, task = TASK.kind, TASK.what  # as the task declares itself
    options = ("beam", "length_penalty", "max_length", "attention")

    def _build(self, ckpt: Checkpoint) -> None:
        self.translator = translator_from_checkpoint(ckpt).to(self.device)
        self.attention_kind: str = self.translator.model.attention_kind

    def _input_spec(self) -> dict[str, Any]:
        pre = self.translator.preprocessing
        return {
            "type": "text",
            "source_language": pre.src_lang,
            "target_language": pre.tgt_lang,
            "lowercase": pre.lowercase,
            "source_vocabulary_size": len(self.translator.src_vocab),
            "target_vocabulary_size": len(self.translator.tgt_vocab),
            "attention": self.attention_kind,
        }

    def _model_summary(self) -> dict[str, Any]:
        return {**self.meta["model"], "parameters": count_parameters(self.translator.model)}

    def example(self) -> str:
        """A one-word sentence."""
        return "a"

    def predict(self, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        """``inputs``: one sentence or a list. Returns per sentence ``{"source",
        "translation", "tokens", "score", "attention"}`` (score: the normalized
        log-probability); a blank sentence among others gives a blank translation and score
        None.

        ``attention`` (default true) is ``{"kind", "source", "target", "weights"}``:
        ``weights`` has one row per target token (summing to 1) over the source tokens,
        those with which the decoder chose that token; for a model without attention it is
        None and ``note`` says why. ``attention=False`` leaves it out (None)."""
        no_unknown(options, self.options)
        given = {**DEFAULTS, **options}
        beam = check_int("beam size", given["beam"], 1, self.limits.max_beam)
        alpha = check_float("length penalty", given["length_penalty"], 0.0, 10.0)
        max_length = given["max_length"]
        if max_length is not None:
            max_length = check_int("max length", max_length, 1, self.limits.max_length)
        attend = True if given["attention"] is None else given["attention"]
        if not isinstance(attend, bool):
            raise StriateError(f"attention must be true or false, not {attend!r}")
        sentences = as_list(inputs, "sentence", self.limits)
        for number, sentence in enumerate(sentences, 1):  # blank lines stay blank lines
            if not isinstance(sentence, str) or sentence.strip() or len(sentences) == 1:
                check_text(f"sentence {number}", sentence, self.limits)
        if not any(s.strip() for s in sentences):
            raise StriateError("every sentence is blank")
        found = self.translator.translate_scored(sentences, beam, alpha, max_length)
        if any(score is not None and not math.isfinite(score) for _, score in found):
            raise not_finite_error()
        return [
            {
                "source": s,
                "translation": detokenize(tokens),
                "tokens": tokens,
                "score": score,
                "attention": self._attention(s, tokens) if attend and s.strip() else None,
            }
            for s, (tokens, score) in zip(sentences, found, strict=True)
        ]

    def _attention(self, sentence: str, tokens: list[str]) -> dict[str, Any]:
        if self.attention_kind == "none":
            return {
                "kind": "none",
                "weights": None,
                "note": "this model has no attention (trained with attention=none): "
                "one fixed summary of the source serves every target word",
            }
        source, weights = self.attention(sentence, tokens)
        return {
            "kind": self.attention_kind,
            "source": source,
            "target": list(tokens),
            "weights": [[round(float(v), 5) for v in row] for row in weights.tolist()],
        }

    @torch.no_grad()
    def attention(self, sentence: str, tokens: list[str]) -> tuple[list[str], torch.Tensor]:
        """(source tokens, weights (len(tokens), S)) for a sentence and its translation
        ``tokens``: row t holds the attention weights over the S source tokens (the words as
        read, then ``<eos>``) with which target word t was chosen
        (:meth:`~striate.models.seq2seq.Seq2Seq.attention_weights`)."""
        pre, model = self.translator.preprocessing, self.translator.model
        source = [*tokenize(sentence, pre.lowercase)[: 4 * pre.max_length], "<eos>"]
        if not tokens:
            return source, torch.zeros(0, len(source))
        src = torch.tensor([pre.src_ids(self.translator.src_vocab, sentence)])
        tgt_in = torch.tensor([self.translator.tgt_vocab.encode(tokens, bos=True)[:-1]])
        lengths = torch.tensor([src.shape[1]])
        weights = model.attention_weights(src.to(self.device), lengths, tgt_in.to(self.device))
        return source, weights[0].float().cpu()
