"""Sentiment (many-to-one sentence classification): texts in, label and probability out."""

from __future__ import annotations

from typing import Any

from striate.apps.sentiment import (
    TASK,
    class_probabilities,
    encode_texts,
    sentiment_model_from_checkpoint,
)
from striate.artifacts.checkpoint import Checkpoint
from striate.errors import check_finite
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import Predictor, as_list, check_text, no_unknown


@register_predictor
class SentimentPredictor(Predictor):
    """Each text's most likely class, its probability, and every class's probability."""

    kind, task = TASK.kind, TASK.what  # as the task declares itself
    options = ()

    def _build(self, ckpt: Checkpoint) -> None:
        model, self.vocab = sentiment_model_from_checkpoint(ckpt)
        self.model = model.to(self.device)
        self.classes: list[str] = list(self.meta["classes"])

    def _input_spec(self) -> dict[str, Any]:
        return {"type": "text", "vocabulary_size": len(self.vocab), **self.meta["tokenization"]}

    def _model_summary(self) -> dict[str, Any]:
        return {
            **self.meta["model"],
            "parameters": count_parameters(self.model),
            "classes": self.classes,
        }

    def example(self) -> str:
        """A one-word text."""
        return "good"

    def predict(self, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        """``inputs``: one text or a list. Returns per text ``{"text", "label",
        "probability", "probabilities": {class: p}}``."""
        no_unknown(options, self.options)
        texts = as_list(inputs, "text", self.limits)
        for number, text in enumerate(texts, 1):
            check_text(f"text {number}", text, self.limits)
        settings = self.meta["tokenization"]
        ids = encode_texts(texts, self.vocab, settings["lowercase"], settings["max_length"])
        probs = check_finite(class_probabilities(self.model, ids, self.device))
        rows = []
        for text, p in zip(texts, probs.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            rows.append(
                {
                    "text": text,
                    "label": self.classes[best],
                    "probability": p[best],
                    "probabilities": dict(zip(self.classes, p, strict=True)),
                }
            )
        return rows
