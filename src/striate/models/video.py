"""Frame-level video classification: a CNN on every frame, an RNN over time, a label per frame.

The lecture's synced many-to-many pattern ("video classification on frame level"). For the
frames x_1..x_T of a clip:

    f_t = CNN(x_t)                      (the same convolutional net on every frame)
    h_t = f_W(h_{t-1}, f_t)             (any cell of ``striate.nn.recurrent``)
    y_t = W_hy h_t + b_y                (logits of frame t's label)

With ``rnn=False`` the recurrence is left out (y_t = W_hy f_t + b_y): each frame is labelled
on its own, the baseline that shows what the memory h_t adds. A bidirectional RNN sees the
future frames too, which offline labelling may use but online labelling (a label as each
frame arrives) may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from striate.errors import StriateError
from striate.models._registry import create_model
from striate.nn.recurrent import Recurrent

__all__ = ["SMALL_ENCODER", "FrameCNN", "VideoClassifier"]

SMALL_ENCODER = "small"


class FrameCNN(nn.Module):
    """A small per-frame CNN: ``stages`` blocks of 3x3 conv → batch norm → ReLU → 2x2 max
    pooling, doubling the width each block, then global average pooling.

    (N, C, S, S) -> (N, width * 2**(stages - 1)); averaging over positions makes the
    features of a moving object independent of where it is.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, stages: int = 3) -> None:
        super().__init__()
        if width < 1 or stages < 1:
            raise StriateError("the frame CNN's width and stages must be positive")
        layers: list[nn.Module] = []
        channels = in_channels
        for k in range(stages):
            out = width * 2**k
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


class _ZooEncoder(nn.Module):
    """A model of the zoo used up to its pooled features (its own head is left unused)."""

    def __init__(self, net: nn.Module, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.net = net
        with torch.no_grad():
            probe = net.eval().forward_features(torch.zeros(2, in_channels, image_size, image_size))
        net.train()
        if probe.dim() != 2:
            raise StriateError("the encoder's forward_features must give (N, features)")
        self.num_features = probe.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


class VideoClassifier(nn.Module):
    """``model(frames (B, T, C, S, S) floats in [0, 1], lengths=None) -> logits (B, T, K)``.

    Args:
        num_classes: K.
        in_channels, image_size: C and S of the frames.
        encoder: ``"small"`` (:class:`FrameCNN`) or the name of any model of the zoo, whose
            ``forward_features`` gives the per-frame features.
        encoder_options: keyword options of the encoder (``width``/``stages`` for
            ``small``, the zoo model's options otherwise).
        cell, hidden, layers, dropout, bidirectional: the recurrent part (see
            :class:`~striate.nn.recurrent.Recurrent`); ``dropout`` also applies to the
            features entering the output layer.
        rnn: False drops the recurrence: the per-frame CNN baseline.
        mean, std: per-channel statistics of the training frames (the lecture's input
            centering), stored as buffers so they travel inside the checkpoint.

    Frames past ``lengths`` are not run through the CNN and get zero logits.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        image_size: int = 32,
        encoder: str = SMALL_ENCODER,
        encoder_options: dict[str, Any] | None = None,
        cell: str = "lstm",
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rnn: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise StriateError("a frame classifier needs at least two classes")
        if not 0 <= dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        options = dict(encoder_options or {})
        self.config: dict[str, Any] = {
            "num_classes": num_classes,
            "in_channels": in_channels,
            "image_size": image_size,
            "encoder": encoder,
            "encoder_options": options,
            "cell": cell,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "bidirectional": bidirectional,
            "rnn": rnn,
        }
        if encoder == SMALL_ENCODER:
            try:
                self.encoder: nn.Module = FrameCNN(in_channels, **options)
            except TypeError as exc:
                raise StriateError(f"encoder small: {exc}") from None
        else:
            net = create_model(encoder, num_classes, in_channels, image_size, **options)
            self.encoder = _ZooEncoder(net, in_channels, image_size)
        features = self.encoder.num_features
        self.rnn = None
        if rnn:
            self.rnn = Recurrent(
                cell, features, hidden, num_layers=layers, dropout=dropout,
                bidirectional=bidirectional,
            )  # fmt: skip
        self.drop = nn.Dropout(dropout)
        width = hidden * (2 if bidirectional else 1) if rnn else features
        self.head = nn.Linear(width, num_classes)
        mean_t = torch.as_tensor(mean if mean is not None else [0.0] * in_channels)
        std_t = torch.as_tensor(std if std is not None else [1.0] * in_channels)
        self.register_buffer("mean", mean_t.float().reshape(1, -1, 1, 1))
        self.register_buffer("std", std_t.float().reshape(1, -1, 1, 1).clamp_min(1e-6))

    def frame_features(self, frames: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """f_t = CNN(x_t) for every valid frame: (B, T, C, S, S) -> (B, T, F), zeros elsewhere."""
        b, t = frames.shape[:2]
        flat = frames.reshape(b * t, *frames.shape[2:])
        x = (flat - self.mean.to(flat.dtype)) / self.std.to(flat.dtype)
        if valid is None:
            return self.encoder(x).reshape(b, t, -1)
        keep = valid.reshape(-1)
        picked = self.encoder(x[keep])
        out = picked.new_zeros(b * t, picked.shape[-1])
        out[keep] = picked
        return out.reshape(b, t, -1)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if frames.dim() != 5:
            raise StriateError(f"expected frames (B, T, C, S, S), got {tuple(frames.shape)}")
        t = frames.shape[1]
        valid = None
        if lengths is not None:
            lengths = lengths.to(frames.device)
            if bool((lengths >= t).all()):
                lengths = None
            else:
                valid = torch.arange(t, device=frames.device)[None, :] < lengths[:, None]
        features = self.frame_features(frames, valid)
        if self.rnn is not None:
            features, _ = self.rnn(features, lengths=lengths)
        logits = self.head(self.drop(features))
        return logits if valid is None else logits * valid[..., None].to(logits.dtype)
