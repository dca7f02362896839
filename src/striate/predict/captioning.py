"""Captioning: images in, captions out, with per-word attention maps when the model
attends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from striate.apps.captioning import (
    TASK,
    caption_tokens,
    captioner_from_checkpoint,
    generate,
    generate_ids,
)
from striate.artifacts.checkpoint import Checkpoint
from striate.data.sources.folder import read_image_file
from striate.data.transforms.functional import to_square
from striate.data.words import detokenize
from striate.errors import StriateError
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import Predictor, as_list, check_int, no_unknown
from striate.predict.image_classification import read_image


def read_images(images: Sequence[str | Path | torch.Tensor], size: int) -> torch.Tensor:
    """(N, 3, size, size) uint8: image files or tensors (C, H, W) of 1 or 3 channels (uint8
    0..255 or floats 0..1), centre-cropped and resized like the training images."""
    batch = []
    for item in images:
        image = item if isinstance(item, torch.Tensor) else read_image_file(item, 3)
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise StriateError(
                f"an image must be (C, H, W) with 1 or 3 channels, got {tuple(image.shape)}"
            )
        if image.dtype != torch.uint8:
            image = (image.float() * 255).round().clamp(0, 255).to(torch.uint8)
        batch.append(to_square(image.expand(3, -1, -1), size))
    if not batch:
        raise StriateError("no images given")
    return torch.stack(batch)


@dataclass
class WordAttention:
    """Where the captioner looked for each word of its caption of one image."""

    image: torch.Tensor  # (3, S, S) uint8, the image as the model sees it
    caption: str  # the generated caption, as ``caption`` gives it
    words: list[str]  # its words (``caption_tokens(caption)``), one per map
    maps: torch.Tensor  # (len(words), h, w) attention weights α, each map sums to 1


@register_predictor
class CaptionPredictor(Predictor):
    """Beam search over the decoder (beam 1: greedy); with attention, each word's map
    α_t = softmax_i(score(h_{t-1}, a_i)) over the encoder's grid (Show, Attend and Tell)."""

    kind, task = TASK.kind, TASK.what  # as the task declares itself
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

    def example(self) -> torch.Tensor:
        """A black image of the encoder's size."""
        return torch.zeros(3, self.size, self.size, dtype=torch.uint8)

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
            seen = self._attend(pixels[i : i + 1], beam, max_length)
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

    def word_attention(self, image: Any, beam: int = 3) -> WordAttention:
        """One image (a path, image bytes or a tensor) captioned, with its words' maps."""
        beam = check_int("beam size", beam, 1, self.limits.max_beam)
        pixels = read_images([read_image(image, None, self.limits)], self.size)
        return self._attend(pixels, beam, self.meta["max_len"])

    def _attend(self, pixels: torch.Tensor, beam: int, max_len: int) -> WordAttention:
        """Caption one image ``pixels`` (1, 3, S, S) uint8, then replay the caption with
        teacher forcing and keep, for each generated word w_t, the soft attention α_t it
        was predicted with (Show, Attend and Tell §3.1.2), reshaped to the (h, w) grid."""
        if not self.has_attention:
            raise StriateError("this captioner has no attention; train with --attention")
        model, vocab = self.model, self.vocab
        (row,) = generate_ids(model, vocab, pixels, beam, max_len)
        words = vocab.decode(row)
        tokens_in = torch.tensor([vocab.encode(words, bos=True)])  # <bos> w_1 … w_n
        with torch.no_grad():
            alphas = model.attention_maps(pixels.to(self.device), tokens_in.to(self.device))
        alphas = alphas[0, : len(words)].cpu()
        side = math.isqrt(alphas.shape[-1])
        if side * side != alphas.shape[-1]:
            raise StriateError(f"the feature map of {alphas.shape[-1]} positions is not square")
        maps = alphas.reshape(len(words), side, side)
        return WordAttention(pixels[0], detokenize(words), words, maps)
