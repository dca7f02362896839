"""``striate summary MODEL|RUN``: the summary table of a registered model or of any run.

A registered model is built for 10 classes and 3 channels at its design size; a run is
rebuilt from its checkpoint, whatever its task, and fed an example input of its own shape:

=====================  ========================================  ======================
kind                   example input                             ``input_size``
=====================  ========================================  ======================
image classifier       (1, C, S, S) images                       ``S`` or ``C,S``
text generation        (1, T) character ids                      ``T`` (default 64)
sentiment              (1, T) word ids and their length          ``T`` (default 32)
translation            (1, T) source ids, length, (1, T) target  ``T`` (default 16)
captioning             (1, C, S, S) image, (1, T) caption ids    ``T`` (default 16)
video                  (1, T, C, S, S) frames                    ``T`` (default 8)
=====================  ========================================  ======================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.analysis.memory import check_activations
from striate.analysis.summary import ModelSummary, summarize
from striate.artifacts.checkpoint import load_checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT, locate_checkpoint
from striate.errors import StriateError
from striate.models import create_model, get_model_spec, list_models

__all__ = ["model_summary", "summary_dict"]

_DEFAULT_LENGTH = {
    "text-generation": 64,
    "sentiment": 32,
    "translation": 16,
    "image-captioning": 16,
    "video-classification": 8,
}
# the longest sequence a summary runs: the shapes it shows are the same for any length, and
# a translator's attention or a long unrolled RNN grows in time and memory with it
MAX_SUMMARY_LENGTH = 4_096
MAX_SUMMARY_FRAMES = 1_024  # as ``--frames`` of a video run (values.MAX_FRAMES)


def _image_input(input_size: Sequence[int] | None, channels: int, size: int) -> tuple[int, int]:
    if not input_size:
        return channels, size
    if len(input_size) == 1:
        return channels, input_size[0]
    if len(input_size) == 2:
        return input_size[0], input_size[1]
    if len(input_size) == 3 and input_size[1] == input_size[2]:
        return input_size[0], input_size[1]
    raise StriateError(f"image input size must be S, C,S or C,S,S, got {list(input_size)}")


def _image(net: nn.Module, channels: int, size: int) -> torch.Tensor:
    """A random (1, C, S, S) image, once :func:`check_activations` has found that ``net``'s
    pass over it fits (a side of 100000 is refused before allocating 120 GB of input)."""
    shape = (1, channels, size, size)
    check_activations(net, (torch.empty(shape, device="meta"),), f"a {size}x{size} image")
    return torch.rand(shape)


def _ids(length: int) -> torch.Tensor:
    return torch.full((1, length), 4, dtype=torch.long)  # past <pad> <unk> <bos> <eos>


def _run_model(
    ref: str | Path, input_size: Sequence[int] | None, runs_dir: str | Path
) -> tuple[nn.Module, tuple, int | None, str]:
    _, ckpt_dir = locate_checkpoint(ref, runs_dir)
    kind = load_checkpoint(ckpt_dir).meta.get("kind")
    if kind == "image-classification":
        from striate.apps.image_classification import load_classifier

        model, meta = load_classifier(ref, runs_dir)
        channels, size = _image_input(
            input_size, meta["input"]["channels"], meta["input"]["image_size"]
        )
        return model.net, (_image(model.net, channels, size),), size, kind
    if kind not in _DEFAULT_LENGTH:
        raise StriateError(f"{ref} holds a {kind or 'unknown'} model, which has no summary")
    if input_size and len(input_size) != 1:
        raise StriateError(f"a {kind} model's input size is one length T, got {list(input_size)}")
    length = input_size[0] if input_size else _DEFAULT_LENGTH[kind]
    if length < 1:
        raise StriateError("input length must be positive")
    limit = MAX_SUMMARY_FRAMES if kind == "video-classification" else MAX_SUMMARY_LENGTH
    if length > limit:
        what = "frames" if kind == "video-classification" else "input length"
        raise StriateError(f"{what} {length} is over the limit {limit} for a summary")
    ids, lengths = _ids(length), torch.tensor([length])
    if kind == "text-generation":
        from striate.apps.text_generation import load_text_model

        net = load_text_model(ref, runs_dir)[0]
        return net, (ids,), None, kind
    if kind == "sentiment":
        from striate.apps.sentiment import load_sentiment_model

        return load_sentiment_model(ref, runs_dir)[0], (ids, lengths), None, kind
    if kind == "translation":
        from striate.apps.translation import load_translator

        return load_translator(ref, runs_dir).model, (ids, lengths, ids), None, kind
    if kind == "image-captioning":
        from striate.apps.captioning import load_captioner

        net, _, meta = load_captioner(ref, runs_dir)
        enc = meta["encoder"]
        image = torch.rand(1, enc["in_channels"], enc["image_size"], enc["image_size"])
        return net, (image, ids), None, kind
    from striate.apps.video import load_video_model

    net, meta = load_video_model(ref, runs_dir)
    cfg = meta["model"]
    channels, size = cfg.get("in_channels", 1), cfg.get("image_size", 32)
    clip = torch.empty(1, length, channels, size, size, device="meta")
    check_activations(net, (clip,), f"a clip of {length} frames of {size}x{size}")
    return net, (torch.rand(clip.shape),), None, kind


def model_summary(
    model_or_run: str | Path,
    input_size: Sequence[int] | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> tuple[ModelSummary, str]:
    """(summary, title) of a registered model name or a run of any task (see module doc)."""
    ref = str(model_or_run)
    if ref in list_models():
        channels, size = _image_input(input_size, 3, get_model_spec(ref).image_size)
        net = create_model(ref, 10, channels, size)
        inputs = (_image(net, channels, size),)
        return summarize(net, inputs, image_size=size), f"{ref} (10 classes)"
    net, inputs, size, kind = _run_model(ref, input_size, runs_dir)
    return summarize(net, inputs, image_size=size), f"{ref} ({kind})"


def summary_dict(summary: ModelSummary, title: str) -> dict[str, Any]:
    """The summary as JSON-ready data, with its title."""
    return {"model": title, **summary.to_dict()}
