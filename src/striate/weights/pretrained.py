"""Build a striate model holding pretrained weights: exactly, or with a new head.

``pretrained_classifier("torchvision:resnet50")`` is the lecture's ImageNet classifier,
ready for :func:`striate.apps.image_classification.classify` (1,000 class names, ImageNet
normalization inside the model, resize 256 / centre crop 224). ``build_net`` is what
training uses: the same weights, and a freshly initialized last layer when the data's
classes are not the weights' own (transfer learning, fine-tuning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.data.transforms.functional import to_square
from striate.errors import StriateError
from striate.models import create_model
from striate.models.classifier import ImageClassifier
from striate.weights.layouts import classifier_layer, fit_state
from striate.weights.sources import Weights, fetch_weights

__all__ = ["build_net", "fit_image", "pretrained_classifier", "replace_classifier"]


def replace_classifier(net: nn.Module, num_classes: int) -> str:
    """Swap the last linear layer for a new one with ``num_classes`` outputs; its name."""
    name, layer = classifier_layer(net)
    parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
    fresh = nn.Linear(layer.in_features, num_classes, bias=layer.bias is not None)
    setattr(parent, name.rpartition(".")[2], fresh.to(layer.weight.device))
    if hasattr(net, "striate_config"):
        net.striate_config = {**net.striate_config, "num_classes": num_classes}
    return name


def _model_name(weights: Weights, model: str | None) -> str:
    if model and weights.model and model != weights.model:
        raise StriateError(f"{weights.spec} holds {weights.model} weights, not {model}")
    name = model or weights.model
    if not name:
        raise StriateError(f"say which model {weights.spec} is for (--model NAME)")
    return name


def build_net(
    weights: Weights,
    model: str | None = None,
    classes: list[str] | None = None,
    in_channels: int | None = None,
    image_size: int | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[nn.Module, bool]:
    """The registered ``model`` holding ``weights``; (net, whether its head is new).

    ``classes`` None keeps the weights' own head. Other classes than the weights' get a
    new, randomly initialized last layer; every other tensor must fit exactly.
    """
    name = _model_name(weights, model)
    channels = in_channels or weights.in_channels or 3
    if weights.in_channels and channels != weights.in_channels:
        raise StriateError(
            f"{weights.spec} takes {weights.in_channels}-channel images, the data has {channels}"
        )
    size = image_size or weights.image_size
    merged = {**weights.model_options, **(options or {})}
    net = create_model(name, len(classes) if classes else 1000, channels, size, **merged)
    head, layer = classifier_layer(net)
    source = weights.state.get(f"{head}.weight")
    new_head = classes is not None and (
        weights.classes != classes or source is None or source.shape[0] != len(classes)
    )
    if classes is None:
        if source is None:
            raise StriateError(f"{weights.spec} has no classifier {head!r}; give the classes")
        if source.shape[0] != layer.out_features:
            replace_classifier(net, source.shape[0])
    what = f"weights {weights.spec}"
    fit_state(net, weights.state, weights.origin, what, skip=head if new_head else None)
    return net, new_head


def pretrained_classifier(
    spec: str,
    model: str | None = None,
    image_size: int | None = None,
    data_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> tuple[ImageClassifier, dict[str, Any]]:
    """A ready classifier (eval mode, CPU) from pretrained weights, and its description:
    ``model`` (its striate config), ``classes``, ``input``, ``normalization``,
    ``preprocess`` and ``weights`` (the SPEC), the keys of a checkpoint's metadata."""
    weights = fetch_weights(spec, model, data_dir, runs_dir, progress)
    net, _ = build_net(weights, model, image_size=image_size)
    cfg = net.striate_config
    classes = weights.classes or [str(i) for i in range(cfg["num_classes"])]
    if len(classes) != cfg["num_classes"]:
        raise StriateError(f"{spec} names {len(classes)} classes for {cfg['num_classes']} outputs")
    channels = cfg["in_channels"]
    mean = weights.mean if weights.mean is not None else [0.0] * channels
    std = weights.std if weights.std is not None else [1.0] * channels
    meta = {
        "model": cfg,
        "classes": classes,
        "input": {"channels": channels, "image_size": cfg["image_size"]},
        "normalization": {"mean": list(mean), "std": list(std)},
        "preprocess": weights.preprocess,
        "weights": spec,
    }
    return ImageClassifier(net, mean, std).eval(), meta


def fit_image(image: torch.Tensor, size: int, preprocess: dict[str, int] | None) -> torch.Tensor:
    """(C, H, W) floats in [0, 1] -> (C, size, size) as the model expects them.

    Without ``preprocess``: the centre square, resized to ``size`` (striate's rule). With
    ImageNet's ``{"resize": 256, "crop": 224}``: the shorter side resized to 256, then the
    centre 224x224 -- the same pixels as the centre square resized to 256 and cropped.
    """
    if not preprocess:
        return to_square(image, size)
    resize, crop = int(preprocess["resize"]), int(preprocess["crop"])
    if crop > resize:
        raise StriateError(f"preprocessing crop {crop} is larger than its resize {resize}")
    square = to_square(image, resize)
    top = (resize - crop) // 2
    cut = square[..., top : top + crop, top : top + crop]
    return cut if crop == size else to_square(cut, size)
