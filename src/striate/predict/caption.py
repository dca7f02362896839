"""Captioning: images in, captions out, with per-word attention maps when the model
attends."""

from __future__ import annotations

from typing import Any

from striate.apps.captioning import (
    KIND,
    caption_tokens,
    captioner_from_checkpoint,
    generate,
    read_images,
    word_attention,
)
from striate.artifacts.checkpoint import Checkpoint
from striate.errors import StriateError
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import Predictor, as_list, check_int, no_unknown
from striate.predict.image import read_image


@register_predictor
class CaptionPredictor(Predictor):
    """Beam search over the decoder (beam 1: greedy); with attention, each word's map
    α_t = softmax_i(score(h_{t-1}, a_i)) over the encoder's grid (Show, Attend and Tell)."""

    kind = KIND
    task = "an image captioner"
    options = ("beam", "max_length", "attention")

    def _build(self, ckpt: Checkpoint) -> None:
        model, self.vocab = captioner_from_checkpoint(ckpt)
        self.model = model.to(self.device)
        self.size = int(self.meta["input"]["image_size"])

    @property
    def has_attention(self) -> bool:
        return self.model.attention is not None

    def _input_spec(self) -> dict[str, Any]:
        return {
            "type": "image",
            "channels": 3,
            "image_size": self.size,
            "vocabulary_size": len(self.vocab),
            "attention": self.has_attention,
        }

    def _model_summary(self) -> dict[str, Any]:
        return {
            "encoder": self.meta["encoder"]["name"],
            **self.meta["captioner"],
            "parameters": count_parameters(self.model),
        }

    def predict(self, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        """``inputs``: one image or a list (paths, image-file bytes, tensors). Returns per
        image ``{"caption", "words", "attention"}``; ``attention`` (default: whether the
        model has it) is ``{"grid": [h, w], "maps": one h x w list per word}`` or None."""
        no_unknown(options, self.options)
        beam = check_int("beam size", options.get("beam", 3), 1, self.limits.max_beam)
        max_length = check_int(
            "max length", options.get("max_length", self.meta["max_len"]), 1, self.limits.max_length
        )
        attend = options.get("attention")
        attend = self.has_attention if attend is None else attend
        if not isinstance(attend, bool):
            raise StriateError(f"attention must be true or false, not {attend!r}")
        if attend and not self.has_attention:
            raise StriateError("this captioner has no attention; train with --attention")
        images = as_list(inputs, "image", self.limits)
        pixels = read_images([read_image(item, None, self.limits) for item in images], self.size)
        if not attend:
            captions = generate(self.model, self.vocab, pixels, beam, max_length)
            return [{"caption": c, "words": caption_tokens(c), "attention": None} for c in captions]
        rows = []
        for i in range(len(images)):
            seen = word_attention(self.model, self.vocab, pixels[i : i + 1], beam, max_length)
            maps = [[[round(float(v), 5) for v in row] for row in m] for m in seen.maps.tolist()]
            grid = list(seen.maps.shape[1:]) if seen.words else []
            rows.append(
                {
                    "caption": seen.caption,
                    "words": seen.words,
                    "attention": {"grid": grid, "maps": maps},
                }
            )
        return rows
