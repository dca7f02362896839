"""Image classification: images in, the top-k classes with their probabilities out; on
request (``explain=True``) also what the network saw: the first convolution's feature maps
and a gradient saliency map for a chosen class."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from striate.analysis.inspect_cnn import analysis_copy, feature_maps, first_conv, saliency_map
from striate.apps.image_classification import TASK, classifier_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint
from striate.artifacts.html import data_uri
from striate.data.sources.folder import read_image_file
from striate.data.transforms.functional import to_square
from striate.errors import StriateError, check_finite
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

MAX_FEATURE_MAPS = 16  # first-layer maps returned by explain (the first ones, in order)
MAX_MAP_SIDE = 64  # larger feature maps and saliency maps are max-pooled down to this


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

    kind, task = TASK.kind, TASK.what  # as the task declares itself
    options = ("top_k", "explain", "target")
    batchable = True  # one row per image; eval mode: an image's row ignores its batch-mates

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

    def example(self) -> torch.Tensor:
        """A black image of the model's size."""
        return torch.zeros(self.channels, self.size, self.size, dtype=torch.uint8)

    def predict(self, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        """``inputs``: one image or a list (paths, image-file bytes, tensors (C, H, W)).
        Returns per image ``{"top": [{"class", "probability"}, ...]}``, most likely first.

        ``explain=True`` adds ``"explain"`` per image (see :meth:`explain`) for the class
        ``target`` (a class name, or its index; default: the image's top class)."""
        no_unknown(options, self.options)
        top_k = min(check_int("top-k", options.get("top_k", 5), 1, 100_000), len(self.classes))
        explain = options.get("explain", False)
        if not isinstance(explain, bool):
            raise StriateError(f"explain must be true or false, not {explain!r}")
        target = self.class_index(options["target"]) if options.get("target") is not None else None
        if target is not None and not explain:
            raise StriateError("target chooses the class to explain: give explain=true with it")
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
            probs = check_finite(self.model(batch.to(self.device)).float()).softmax(-1).cpu()
        top = probs.topk(top_k, dim=-1)
        rows = [
            {
                "top": [
                    {"class": self.classes[i], "probability": float(p)}
                    for p, i in zip(ps.tolist(), idx.tolist(), strict=True)
                ]
            }
            for ps, idx in zip(top.values, top.indices, strict=True)
        ]
        if explain:
            for row, image, best in zip(rows, batch, top.indices[:, 0].tolist(), strict=True):
                row["explain"] = self.explain(image, best if target is None else target)
        return rows

    def class_index(self, target: Any) -> int:
        """A class given by name (``"7"``, ``"cat"``) or by index, as its index."""
        if isinstance(target, str):
            if target not in self.classes:
                shown = ", ".join(self.classes[:20]) + (", ..." if len(self.classes) > 20 else "")
                raise StriateError(f"no class {target!r}; the classes are {shown}")
            return self.classes.index(target)
        return check_int("target class index", target, 0, len(self.classes) - 1)

    def explain(self, image: torch.Tensor, target: int) -> dict[str, Any]:
        """What the network saw of one image (C, S, S) in [0, 1] as the model takes it:

        - ``feature_maps``: the first convolution's output maps (at most
          :data:`MAX_FEATURE_MAPS`), each a grey PNG ``data:`` URL scaled to its own range;
        - ``saliency``: M_ij = max_c |dS_y / dx_cij| (Simonyan et al. 2013, the gradient of
          the class score S_y, the logit, with respect to the input pixels), divided by its
          maximum so it lies in [0, 1]; an S x S list of rows.

        Maps larger than :data:`MAX_MAP_SIDE` are max-pooled down to it. Both are computed
        on a private copy of the network (:func:`~striate.analysis.inspect_cnn.analysis_copy`),
        so concurrent requests never share hooks."""
        net = analysis_copy(self.model)
        x = image.unsqueeze(0).to(self.device)
        layer, _ = first_conv(net)  # type: ignore[misc]
        maps = _bounded(feature_maps(net, x, layer)[0].float().cpu())
        shown = maps[:MAX_FEATURE_MAPS]
        low = shown.amin(dim=(1, 2), keepdim=True)
        span = (shown.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-12)
        saliency, _, cls = saliency_map(net, x[0], target)
        saliency = _bounded(saliency.float().cpu()[None])[0]
        saliency = saliency / saliency.max() if saliency.max() > 0 else saliency
        return {
            "class": self.classes[cls],
            "feature_maps": {
                "layer": layer,
                "count": int(maps.shape[0]),
                "size": list(maps.shape[1:]),
                "maps": [_png_data_uri(m) for m in (shown - low) / span],
            },
            "saliency": {
                "size": list(saliency.shape),
                "map": [[round(float(v), 5) for v in row] for row in saliency.tolist()],
            },
        }


def _bounded(maps: torch.Tensor) -> torch.Tensor:
    """(C, H, W) maps max-pooled so neither side exceeds :data:`MAX_MAP_SIDE`."""
    h, w = maps.shape[-2:]
    if max(h, w) <= MAX_MAP_SIDE:
        return maps
    scale = MAX_MAP_SIDE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.adaptive_max_pool2d(maps[None], size)[0]


def _png_data_uri(gray: torch.Tensor) -> str:
    """A grey PNG (as a ``data:`` URL) of an (H, W) map with values in [0, 1]."""
    pixels = (gray.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return data_uri(buffer.getvalue())
