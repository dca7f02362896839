"""Image classification: images in, the top-k classes with their probabilities out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from striate.apps.image_classification import KIND, classifier_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint
from striate.data.sources.folder import read_image_file
from striate.data.transforms.functional import to_square
from striate.errors import StriateError
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import (
    Limits,
    Predictor,
    as_list,
    check_int,
    no_unknown,
    to_float_images,
)
from striate.weights.pretrained import fit_image, pretrained_classifier


def read_image(item: Any, channels: int | None, limits: Limits) -> torch.Tensor:
    """One image as a tensor (C, H, W): a file path, the bytes of an image file, or a tensor
    (uint8 0..255 or float 0..1). Files and bytes larger than ``limits.max_pixels`` are
    refused from their header, before decoding."""
    if isinstance(item, torch.Tensor):
        if item.dim() != 3 or (channels is not None and item.shape[0] != channels):
            want = f"the model takes {channels} channel(s)" if channels else "expected (C, H, W)"
            raise StriateError(f"image of shape {tuple(item.shape)} does not fit: {want}")
        if item.shape[1] * item.shape[2] > limits.max_pixels:
            raise StriateError(f"image of {item.shape[1]}x{item.shape[2]} pixels is too large")
        return item
    if isinstance(item, (bytes, bytearray)):
        return read_image_file(bytes(item), channels, limits.max_pixels)
    if isinstance(item, (str, Path)):
        return read_image_file(item, channels, limits.max_pixels)
    raise StriateError(
        f"an image is a file path, image bytes or a tensor, not {type(item).__name__}"
    )


def square_floats(image: torch.Tensor, size: int) -> torch.Tensor:
    """(C, size, size) floats in [0, 1]: centre-cropped and resized like training data."""
    return to_square(to_float_images(image), size)


@register_predictor
class ImageClassifierPredictor(Predictor):
    """The lecture's classifier table: each image's top-k classes with probabilities
    softmax(z)_k."""

    kind = KIND
    task = "an image classifier"
    options = ("top_k",)

    def _build(self, ckpt: Checkpoint) -> None:
        self.model = classifier_from_checkpoint(ckpt).to(self.device)
        self.classes: list[str] = list(self.meta["classes"])
        self.channels = int(self.meta["input"]["channels"])
        self.size = int(self.meta["input"]["image_size"])
        self.preprocess: dict[str, int] | None = self.meta.get("preprocess")

    @classmethod
    def from_weights(
        cls,
        spec: str,
        model: str | None = None,
        device: str = "auto",
        limits: Limits | None = None,
        runs_dir: str | Path = "runs",
    ) -> ImageClassifierPredictor:
        """A predictor over pretrained weights instead of a run (``torchvision:resnet50``,
        ``hf:REPO``, a ``.safetensors`` file): their classes and preprocessing come along."""
        net, meta = pretrained_classifier(spec, model, runs_dir=runs_dir)
        ckpt = Checkpoint(path=Path(spec), model_state=net.state_dict(), meta=meta)
        return cls(ckpt, device, limits)

    def _input_spec(self) -> dict[str, Any]:
        return {"type": "image", "channels": self.channels, "image_size": self.size}

    def _model_summary(self) -> dict[str, Any]:
        return {
            "name": self.meta["model"]["name"],
            "parameters": count_parameters(self.model),
            "classes": self.classes,
        }

    def predict(self, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        """``inputs``: one image or a list (paths, image-file bytes, tensors (C, H, W)).
        Returns per image ``{"top": [{"class", "probability"}, ...]}``, most likely first."""
        no_unknown(options, self.options)
        top_k = min(check_int("top-k", options.get("top_k", 5), 1, 100_000), len(self.classes))
        images = as_list(inputs, "image", self.limits)
        batch = torch.stack(
            [
                fit_image(
                    to_float_images(read_image(item, self.channels, self.limits)),
                    self.size,
                    self.preprocess,
                )
                for item in images
            ]
        )
        with torch.inference_mode():
            probs = self.model(batch.to(self.device)).float().softmax(-1).cpu()
        top = probs.topk(top_k, dim=-1)
        return [
            {
                "top": [
                    {"class": self.classes[i], "probability": float(p)}
                    for p, i in zip(ps.tolist(), idx.tolist(), strict=True)
                ]
            }
            for ps, idx in zip(top.values, top.indices, strict=True)
        ]
