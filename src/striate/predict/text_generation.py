"""Text generation: a prime in, sampled characters out, whole or streamed one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from striate.apps.text_generation import TASK, generate, text_model_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import (
    Predictor,
    check_float,
    check_int,
    check_seed,
    check_text,
    no_unknown,
)

DEFAULTS = {"temperature": 0.8, "top_k": 40, "length": 500, "seed": None}


@register_predictor
class TextGeneratorPredictor(Predictor):
    """A character-level language model: each next character is drawn from
    softmax(logits / temperature), restricted to the top_k most likely ones."""

    kind, task = TASK.kind, TASK.what  # as the task declares itself
    options = ("temperature", "top_k", "length", "seed")

    def _build(self, ckpt: Checkpoint) -> None:
        model, self.vocab = text_model_from_checkpoint(ckpt)
        self.model = model.to(self.device)

    def _input_spec(self) -> dict[str, Any]:
        return {"type": "text", "vocabulary_size": len(self.vocab), "characters": self.vocab.chars}

    def _model_summary(self) -> dict[str, Any]:
        return {**self.meta["model"], "parameters": count_parameters(self.model)}

    def _checked(self, prime: Any, options: dict[str, Any]) -> dict[str, Any]:
        no_unknown(options, self.options)
        given = {**DEFAULTS, **options}
        top_k = given["top_k"]
        return {
            "prime": check_text("the prime", prime, self.limits, blank_ok=True),
            "temperature": check_float(
                "temperature", given["temperature"], 0.0, self.limits.max_temperature, low_open=True
            ),
            # 0 or None: every character is a candidate
            "top_k": None if top_k is None else check_int("top-k", top_k, 0, 1_000_000) or None,
            "length": check_int("length", given["length"], 1, self.limits.max_sample_length),
            "seed": check_seed(given["seed"]),
        }

    def stream(self, prime: str, **options: Any) -> Iterator[str]:
        """Yield ``length`` characters one at a time, continuing ``prime`` (not repeated).
        Options are checked before the first character, so bad ones fail at the call."""
        c = self._checked(prime, options)
        return generate(
            self.model, self.vocab, c["prime"], c["temperature"], c["top_k"], c["length"], c["seed"]
        )

    def example(self) -> str:
        """A prime of one character the model knows."""
        return self.vocab.chars[0]

    def warm_up(self) -> None:
        """Sample a few characters (the default length would take a second)."""
        self.predict(self.example(), length=8)

    def predict(self, inputs: Any, **options: Any) -> dict[str, Any]:
        """``inputs``: the prime. Returns ``{"prime", "text"}`` (text without the prime)."""
        return {"prime": inputs, "text": "".join(self.stream(inputs, **options))}
