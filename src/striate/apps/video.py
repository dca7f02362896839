"""Frame-level video classification end to end: train, evaluate, label a clip.

``striate train video``, ``striate eval-video`` and ``striate label-video`` are these
functions::

    from striate.apps import video
    result = video.train(video.VideoTrainConfig(data="moving-digits", cell="lstm"))
    report = video.evaluate(result.run)          # per-frame, per-class and memory accuracy
    video.label_video(result.run, "clip-folder")  # [(label, probability)] per frame

Accuracy is counted per frame over the frames inside each clip (padding is ignored).
``memory_accuracy`` is the accuracy on the frames whose label is not visible in them (the
generated set's hidden frames, see :mod:`striate.data.sources.moving_digits`): there a per-frame
CNN (``no_rnn``) can only guess, and the recurrent state has to remember.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from striate.apps import _meta as checked
from striate.apps._runs import TaskConfig, prepare_run, recurrent_engine_defaults
from striate.apps._task import (
    Task,
    classification_counts,
    placement,
    restored,
    stamp,
    write_report,
)
from striate.artifacts.checkpoint import Checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT
from striate.data.batching import TensorBatches
from striate.data.sources.moving_digits import MovingDigits, check_clip_memory
from striate.data.sources.video import (
    FOLDER_PREFIX,
    MOVING_DIGITS,
    VideoData,
    load_video_data,
)
from striate.data.transforms.functional import channel_mean_std
from striate.engine.device import resolve_device
from striate.engine.loop import EngineConfig, FitResult, fit
from striate.engine.steps import FrameClassificationStep, frame_counts
from striate.errors import StriateError
from striate.models.video import VideoClassifier

KIND = "video-classification"


def video_engine_defaults() -> EngineConfig:
    """CNN + RNN models train with the recurrent defaults (Adam, cosine, clipping)."""
    return recurrent_engine_defaults(epochs=4, batch_size=32, warmup_steps=20, log_every=20)


@dataclass
class VideoTrainConfig(TaskConfig):
    """Everything that defines a video run (saved as the run's config.json).

    ``data``: ``moving-digits`` (generated; ``digits``, ``frames``, ``image_size`` and
    the numbers of ``clips``, ``val_clips`` and ``test_clips`` shape it; the test clips are
    the same for every seed) or ``folder:PATH`` (``image_size``, ``channels``
    and ``val_fraction`` apply). ``encoder``: ``small`` or a model of the zoo.
    ``no_rnn``: per-frame CNN only, the baseline without memory.
    """

    data: str = MOVING_DIGITS
    data_dir: str | None = None
    digits: str = "digits"
    frames: int = 16
    image_size: int | None = None
    channels: int | None = None
    clips: int = 3000
    val_clips: int = 500
    test_clips: int = 1000
    val_fraction: float = 0.1
    encoder: str = "small"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    cell: str = "lstm"
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    no_rnn: bool = False
    name: str | None = None
    runs_dir: str = str(DEFAULT_ROOT)
    engine: EngineConfig = field(default_factory=video_engine_defaults)

    def __post_init__(self) -> None:
        self._engine_from_dict()
        if self.hidden < 1 or self.layers < 1:
            raise StriateError("hidden size and layers must be positive")
        if min(self.clips, self.val_clips, self.test_clips, self.frames) < 1:
            raise StriateError("the numbers of clips and frames must be positive")
        if not 0 <= self.dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        if not 0 < self.val_fraction < 1:
            raise StriateError("validation fraction must be between 0 and 1")
        if self.image_size is not None and self.image_size < 4:
            raise StriateError("image size must be at least 4")
        if self.channels not in (None, 1, 3):
            raise StriateError("channels must be 1 or 3")
        if self.data != MOVING_DIGITS and not self.data.startswith(FOLDER_PREFIX):
            raise StriateError(
                f"unknown video data {self.data!r}; use {MOVING_DIGITS} or {FOLDER_PREFIX}PATH"
            )


@dataclass
class VideoTrainResult:
    run: Path | None
    fit: FitResult
    classes: list[str]


# ---------------------------------------------------------------------------------------------
# data


def _spec(data: dict[str, Any]) -> MovingDigits:
    return MovingDigits(
        frames=data["frames"], image_size=data["image_size"] or 32, digits=data["digits"]
    )


def _data_facts(config: VideoTrainConfig) -> dict[str, Any]:
    """What it takes to load the run's data again (stored in every checkpoint)."""
    return {
        "source": config.data,
        "data_dir": config.data_dir,
        "digits": config.digits,
        "frames": config.frames,
        "image_size": config.image_size,
        "channels": config.channels,
        "clips": {"train": config.clips, "val": config.val_clips, "test": config.test_clips},
        "val_fraction": config.val_fraction,
        "seed": config.engine.seed,
    }


def _load(facts: dict[str, Any], split: str, **override: Any) -> VideoData:
    source = override.get("source") or facts["source"]
    size = override.get("image_size", facts["image_size"])
    return load_video_data(
        source,
        split,
        spec=_spec({**facts, "image_size": size}) if source == MOVING_DIGITS else None,
        clips=facts["clips"].get(split),
        data_dir=override.get("data_dir") or facts["data_dir"],
        image_size=size,
        channels=override.get("channels", facts["channels"]),
        val_fraction=facts["val_fraction"],
        seed=facts["seed"],
    )


def _batches(data: VideoData, batch_size: int, shuffle: bool, **shard: Any) -> TensorBatches:
    return TensorBatches(data.frames, data.targets(), batch_size, shuffle=shuffle, **shard)


# ---------------------------------------------------------------------------------------------
# train


def train(config: VideoTrainConfig, resume: str | Path | None = None) -> VideoTrainResult:
    """Train a CNN + RNN frame classifier; ``resume`` (a run directory) continues it exactly."""
    dist, _, shard = placement(config.engine.device)
    facts = _data_facts(config)
    if facts["source"] == MOVING_DIGITS:  # every split generated must fit, the test one too
        spec = _spec(facts)
        for count in facts["clips"].values():
            check_clip_memory(count, spec.frames, spec.image_size, spec.glyph_size)
    train_set = _load(facts, "train")
    # the validation clips must match the training frames (a folder's size comes from it)
    fixed = {"image_size": train_set.image_size, "channels": train_set.channels}
    val_set = _load(facts, "val", **fixed)
    if val_set.classes != train_set.classes:
        raise StriateError("the validation clips use other labels than the training clips")
    classes = train_set.classes
    bs, seed = config.engine.batch_size, config.engine.seed
    train_b = _batches(train_set, bs, True, seed=seed, **shard)
    val_b = _batches(val_set, 64, False, **shard)
    mean, std = channel_mean_std(train_set.frames[train_set.valid])

    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    model = VideoClassifier(
        len(classes), train_set.channels, train_set.image_size, config.encoder,
        config.encoder_options, config.cell, config.hidden, config.layers, config.dropout,
        config.bidirectional, not config.no_rnn, mean.tolist(), std.tolist(),
    )  # fmt: skip
    what = "cnn" if config.no_rnn else f"cnn-{config.cell}"
    prefix = f"{what}-{_data_label(config.data)}"
    run, resume_from = prepare_run(config, KIND, prefix, resume, dist)
    meta = {
        **stamp(KIND),
        "model": model.config,
        "classes": classes,
        "input": {"channels": train_set.channels, "image_size": train_set.image_size},
        "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "data": {**facts, **fixed},
    }
    result = fit(
        model, FrameClassificationStep(), train_b, val_b, config.engine, run=run, meta=meta,
        resume_from=resume_from, dist=dist,
    )  # fmt: skip
    return VideoTrainResult(run.path if run else None, result, classes)


def _data_label(data: str) -> str:
    if not data.startswith(FOLDER_PREFIX):
        return data
    return Path(data.removeprefix(FOLDER_PREFIX)).name or "folder"


# ---------------------------------------------------------------------------------------------
# load, evaluate, label


def load_video_model(
    run: str | Path, runs_dir: str | Path = DEFAULT_ROOT
) -> tuple[VideoClassifier, dict[str, Any]]:
    """Rebuild a trained frame classifier (eval mode, CPU) and its checkpoint's facts."""
    return TASK.load(run, runs_dir)


def video_model_from_checkpoint(ckpt: Checkpoint) -> VideoClassifier:
    """The frame classifier (eval mode, CPU) a loaded video checkpoint holds."""
    cfg = checked.section(ckpt, "model")
    mean, std = checked.normalization(ckpt)
    model = restored(
        checked.built(ckpt, "model", lambda: VideoClassifier(**cfg, mean=mean, std=std)), ckpt
    )
    # after the weights fit: num_classes is then the size of their final layer
    checked.class_names(ckpt, int(cfg["num_classes"]))
    return model


def evaluate(
    run: str | Path,
    split: str = "test",
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    runs_dir: str | Path = DEFAULT_ROOT,
    write: bool = True,
) -> dict[str, Any]:
    """Per-frame accuracy, per-class accuracy and accuracy on memory frames of a split.

    ``data`` defaults to the run's own source (the generated test clips use held-out
    glyphs); another source must use the same labels. Writes ``eval-SPLIT.json`` into
    the run.
    """
    run_path, model, meta = TASK.for_evaluation(run, runs_dir)
    facts, classes = meta["data"], meta["classes"]
    dataset = _load(facts, split, source=data, data_dir=data_dir)
    if dataset.classes != classes:
        raise StriateError(f"those clips use other labels than the model ({classes[:4]}...)")
    dev = resolve_device(device)
    model.to(dev)
    step, total = FrameClassificationStep(), {}
    predictions = []
    with torch.inference_mode():
        for batch in _batches(dataset, 64, False, device=dev).epoch(0):
            frames, labels, memory, lengths = step.unpack(batch)
            logits = model(frames, lengths)
            for key, value in frame_counts(logits, labels, memory).items():
                total[key] = total.get(key, 0) + float(value)
            predictions.append(logits.argmax(-1).cpu())
    predicted = torch.cat(predictions)
    valid = dataset.valid
    _, counts = classification_counts(dataset.labels[valid], predicted[valid], classes)
    visible = valid & ~dataset.memory
    summary = step.summarize(total)
    report = {
        "split": split,
        "data": data or facts["source"],
        "clips": len(dataset),
        "frames": int(total["count"]),
        "loss": summary["loss"],
        "accuracy": summary["accuracy"],
        "memory_frames": int(total["memory_count"]),
        "memory_accuracy": summary.get("memory_accuracy"),
        "visible_accuracy": float((predicted == dataset.labels)[visible].float().mean())
        if bool(visible.any())
        else None,
        "per_class_accuracy": counts["per_class_accuracy"],
        "confusion": counts["confusion"],
        "rnn": meta["model"]["rnn"],
    }
    return write_report(run_path, split, report, write)


def label_video(
    run: str | Path,
    clip: str | Path | torch.Tensor,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> list[tuple[str, float]]:
    """The label and its probability for every frame of a clip, in order.

    ``clip`` is a folder of frame images, a video file (PyAV), or a tensor (T, C, H, W) of
    uint8 values 0..255 (or floats 0..1); frames are resized to the model's input size. A
    label file is not needed. Each frame's label depends only on it and the frames before
    it, unless the model is bidirectional (see
    :class:`striate.predict.video.VideoPredictor`, which this calls).
    """
    rows = TASK.predictor(run, runs_dir=runs_dir).predict(clip)["frames"]
    return [(row["label"], row["probability"]) for row in rows]


TASK = Task(
    KIND, "a video classifier", VideoTrainConfig, train, video_model_from_checkpoint, evaluate
)
resume = TASK.resume
