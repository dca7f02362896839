"""Video: a clip in (a video file, a folder of frames, frame images or a tensor), a label
and its probability per frame out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from striate.apps.video import TASK, video_model_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint
from striate.data.sources.video import load_clip
from striate.errors import StriateError, check_finite
from striate.models import count_parameters
from striate.predict import register_predictor
from striate.predict.base import Predictor, no_unknown
from striate.predict.image_classification import read_image, square_floats


@register_predictor
class VideoPredictor(Predictor):
    """Frame-level labels: each frame's label depends on it and the frames before it (and
    after it, for a bidirectional model)."""

    kind, task = TASK.kind, TASK.what  # as the task declares itself
    options = ()

    def _build(self, ckpt: Checkpoint) -> None:
        self.model = video_model_from_checkpoint(ckpt).to(self.device)
        self.classes: list[str] = list(self.meta["classes"])
        self.channels = int(self.meta["input"]["channels"])
        self.size = int(self.meta["input"]["image_size"])

    def _input_spec(self) -> dict[str, Any]:
        return {
            "type": "video",
            "channels": self.channels,
            "image_size": self.size,
            "max_frames": self.limits.max_frames,
        }

    def _model_summary(self) -> dict[str, Any]:
        return {
            **self.meta["model"],
            "parameters": count_parameters(self.model),
            "classes": self.classes,
        }

    def frames(self, clip: Any) -> torch.Tensor:
        """The clip as the model sees it: (T, C, S, S) floats in [0, 1]."""
        limits = self.limits
        if isinstance(clip, (str, Path)):
            frames, _ = load_clip(
                clip,
                self.channels,
                self.size,
                with_labels=False,
                max_frames=limits.max_frames,
                max_pixels=limits.max_pixels,
            )
            return square_floats(frames, self.size)
        if isinstance(clip, torch.Tensor):
            if clip.dim() != 4 or clip.shape[1] != self.channels or len(clip) == 0:
                raise StriateError(
                    f"clip of shape {tuple(clip.shape)} does not fit: expected "
                    f"(T, {self.channels}, H, W)"
                )
            clip = list(clip)
        if not isinstance(clip, (list, tuple)):
            raise StriateError(
                "a clip is a video file, a folder of frames, a list of frame "
                f"images or a tensor (T, C, H, W), not {type(clip).__name__}"
            )
        if len(clip) > limits.max_frames:
            raise StriateError(f"the clip has {len(clip)} frames; at most {limits.max_frames}")
        if not clip:
            raise StriateError("the clip has no frames")
        return torch.stack(
            [square_floats(read_image(f, self.channels, limits), self.size) for f in clip]
        )

    def example(self) -> torch.Tensor:
        """A clip of two black frames of the model's size."""
        return torch.zeros(2, self.channels, self.size, self.size, dtype=torch.uint8)

    def predict(self, inputs: Any, **options: Any) -> dict[str, Any]:
        """``inputs``: one clip. Returns ``{"frames": [{"frame", "label", "probability"}]}``
        in order."""
        no_unknown(options, self.options)
        x = self.frames(inputs)
        with torch.inference_mode():
            logits = check_finite(self.model(x.unsqueeze(0).to(self.device))[0].float())
        probs = logits.softmax(-1).cpu()
        best = probs.max(-1)
        return {
            "frames": [
                {"frame": i, "label": self.classes[c], "probability": float(p)}
                for i, (p, c) in enumerate(
                    zip(best.values.tolist(), best.indices.tolist(), strict=True)
                )
            ]
        }
