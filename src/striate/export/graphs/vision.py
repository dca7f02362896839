"""The image classifier's and the video classifier's graphs (see :mod:`striate.export.graphs`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from striate.export.graphs.base import (
    Graph,
    Port,
    TaskGraphs,
)
from striate.export.recurrence import LoopRecurrent
from striate.predict.base import Predictor

# ---------------------------------------------------------------------------------------------
# image classifiers


class ImageGraph(nn.Module):
    """images (N, C, S, S) -> (logits, probabilities); standardization inside, and for
    uint8 pixels the division by 255."""

    def __init__(self, model: nn.Module, uint8: bool) -> None:
        super().__init__()
        self.model, self.uint8 = model, uint8

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = images.float() / 255.0 if self.uint8 else images
        logits = self.model(x)
        return logits, torch.softmax(logits, -1)


def image_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    uint8 = options.get("image_dtype", "float32") == "uint8"
    c, s = p.channels, p.size
    dtype = "uint8" if uint8 else "float32"
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> Tensor:
        x = torch.rand(n, c, s, s, generator=g)
        return (x * 255).round().to(torch.uint8) if uint8 else x

    def reference(x: Tensor) -> tuple[Tensor, Tensor]:
        logits = p.model(x.float() / 255.0 if uint8 else x)
        return logits, logits.softmax(-1)

    k = len(p.classes)
    graph = Graph(
        "model",
        ImageGraph(p.model, uint8),
        [Port("images", dtype, ("batch", c, s, s))],
        [Port("logits", "float32", ("batch", k)), Port("probabilities", "float32", ("batch", k))],
        (images(2),),
        (images(3),),
        reference,
    )
    info = {
        "classes": p.classes,
        "preprocessing": {
            "channels": c,
            "image_size": s,
            "pixels": "uint8 0..255" if uint8 else "float32 0..1",
            "resize": p.preprocess or "centre-crop to a square, then resize to image_size",
            "normalization": "inside the graph (per-channel training mean and std)",
        },
    }
    return TaskGraphs(p.kind, [graph], info)


# ---------------------------------------------------------------------------------------------
# video


class VideoGraph(nn.Module):
    """frames (B, T, C, S, S) floats 0..1 -> logits (B, T, K): the CNN on every frame, the
    recurrence over time (all T frames of every clip), a label per frame."""

    __constants__ = ("recurrent",)

    def __init__(self, model: nn.Module, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else model.encoder
        self.register_buffer("mean", model.mean.clone())
        self.register_buffer("std", model.std.clone())
        self.recurrent = model.rnn is not None
        self.rnn = LoopRecurrent(model.rnn) if model.rnn is not None else None
        self.head = model.head

    def forward(self, frames: Tensor) -> Tensor:
        b, t = frames.shape[0], frames.shape[1]
        flat = frames.reshape(b * t, frames.shape[2], frames.shape[3], frames.shape[4])
        features = self.encoder((flat - self.mean) / self.std).reshape(b, t, -1)
        rnn = self.rnn
        if rnn is not None:
            lengths = torch.full((b,), t, dtype=torch.long, device=frames.device)
            features, _ = rnn(features, lengths, rnn.zero_state(features))
        return self.head(features)


def video_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model = p.model
    c, s, k = p.channels, p.size, len(p.classes)
    g = torch.Generator().manual_seed(0)

    def frames(b: int, t: int) -> tuple[Tensor]:
        return (torch.rand(b, t, c, s, s, generator=g),)

    def for_script() -> nn.Module:
        # the frame CNN is traced (its batch stays dynamic), the time loop scripted around it
        probe = torch.rand(2, c, s, s)
        with torch.no_grad():
            traced = torch.jit.trace(model.encoder, probe, check_trace=False)
        return VideoGraph(model, traced).eval()

    graph = Graph(
        "model",
        VideoGraph(model),
        [Port("frames", "float32", ("batch", "frames", c, s, s))],
        [Port("logits", "float32", ("batch", "frames", k))],
        frames(2, 4),
        frames(3, 6),
        lambda x: (model(x),),
        loops=model.rnn is not None,
        for_script=for_script,
    )
    info = {
        "classes": p.classes,
        "preprocessing": {
            "channels": c,
            "image_size": s,
            "pixels": "float32 0..1",
            "resize": "centre-crop each frame to a square, then resize to image_size",
            "normalization": "inside the graph",
        },
        "recurrence": model.config.get("cell") if model.rnn is not None else None,
        "bidirectional": bool(model.config.get("bidirectional")),
    }
    return TaskGraphs(p.kind, [graph], info)
