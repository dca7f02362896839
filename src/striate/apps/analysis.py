"""Seeing inside models: the analyses behind ``striate analyze ...``.

Each function takes a registered model name or a trained run, so the same question can be
asked of an architecture and of the network a run produced.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from striate.analysis.receptive_field import LayerField, receptive_fields
from striate.apps.image_classification import load_classifier
from striate.artifacts.run_dir import DEFAULT_ROOT
from striate.models import create_model, list_models


def resolve_network(
    model_or_run: str | Path,
    image_size: int | None = None,
    in_channels: int = 3,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> tuple[nn.Module, int]:
    """(network, input side) for a registered model name or an image-classification run."""
    if str(model_or_run) in list_models():
        net = create_model(str(model_or_run), 10, in_channels, image_size)
        return net, net.striate_config["image_size"]
    classifier, meta = load_classifier(model_or_run, runs_dir)
    return classifier.net, image_size or meta["input"]["image_size"]


def receptive_field_table(
    model_or_run: str | Path,
    image_size: int | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> list[LayerField]:
    """Receptive field size, jump and start of every layer (see ``analysis.receptive_field``)."""
    net, size = resolve_network(model_or_run, image_size, runs_dir=runs_dir)
    return receptive_fields(net, size)
