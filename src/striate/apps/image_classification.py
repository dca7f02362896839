"""Image classification end to end: train, evaluate, classify.

Each function here is what one command line does (``striate train image``, ``striate
eval``, ``striate classify``), callable from Python with the same arguments::

    from striate.apps import image_classification as ic
    result = ic.train(ic.ImageTrainConfig(model="lenet5", data="mnist", augment="rotate"))
    report = ic.evaluate(result.run)
    ic.classify(result.run, ["digit.png"])  # top-5 classes with probabilities per image
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from striate.apps import _meta as checked
from striate.apps._runs import TaskConfig, prepare_run
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
from striate.data.batching import StreamBatches, TensorBatches
from striate.data.sources.base import ImageData
from striate.data.sources.images import (
    ImageFolderStream,
    estimate_folder_bytes,
    load_image_data,
)
from striate.data.transforms.augment import build_augmentation
from striate.data.transforms.functional import channel_mean_std, to_square
from striate.engine.device import resolve_device
from striate.engine.loop import EngineConfig, FitResult, fit
from striate.engine.steps import ClassificationStep, topk_correct
from striate.errors import StriateError
from striate.models import create_model, get_model_spec
from striate.models.classifier import ImageClassifier

KIND = "image-classification"


@dataclass
class ImageTrainConfig(TaskConfig):
    """Everything that defines an image-classification run (saved as the run's config.json).

    ``data`` is a source name (``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``) or
    ``folder:PATH``; ``image_size`` None means the data's own size when the model accepts
    it, else the model's design size; ``limit`` trains on the first N shuffled images.
    """

    model: str = "lenet5"
    data: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    augment: str = ""
    label_smoothing: float = 0.0
    val_fraction: float = 0.1
    validate_on: str = "val"  # "test" reports the test split each epoch (val_fraction may be 0)
    limit: int | None = None
    memory_limit_gb: float = 4.0  # larger image folders stream from disk instead
    workers: int = 2
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # pretrained weights: a SPEC of striate.weights.fetch_weights
    fine_tune: bool = False  # with weights: head first (body frozen), then a slower body
    freeze_epochs: int = 1
    body_lr_factor: float = 0.1
    name: str | None = None
    runs_dir: str = str(DEFAULT_ROOT)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        self._engine_from_dict()
        if not 0 <= self.label_smoothing < 1:
            raise StriateError("label smoothing must be in [0, 1)")
        if self.validate_on not in ("val", "test"):
            raise StriateError("validate on must be val or test")
        if not 0 <= self.val_fraction < 1:
            raise StriateError("validation fraction must be in [0, 1)")
        if self.val_fraction == 0 and self.validate_on == "val":
            raise StriateError("validation fraction 0 leaves no validation split; validate on test")
        if self.limit is not None and self.limit < 2:
            raise StriateError("limit must be at least 2 images")
        if self.image_size is not None and self.image_size < 1:
            raise StriateError("image size must be positive")
        if self.fine_tune and not self.weights:
            raise StriateError("fine-tuning needs pretrained weights (--weights SPEC)")
        if self.fine_tune and not 0 <= self.freeze_epochs < self.engine.epochs:
            raise StriateError("freeze epochs must be at least 0 and fewer than the epochs")
        if not 0 <= self.body_lr_factor <= 1:
            raise StriateError("body learning-rate factor must be in [0, 1]")


@dataclass
class TrainResult:
    run: Path | None
    fit: FitResult
    classes: list[str]


# ---------------------------------------------------------------------------------------------
# data


def fitting_batch_size(batch_size: int, samples: int, world_size: int = 1, say: bool = True) -> int:
    """``batch_size``, or the largest batch the training split fills when it is smaller (a
    folder of 48 images with the default batch of 128 trains on full batches of its split);
    ``say`` prints the change as one line on stderr. A batch is a multiple of the processes.
    """
    if batch_size <= samples:
        return batch_size
    fitting = max(samples // world_size * world_size, world_size)
    if say:
        print(
            f"striate: batch size {batch_size} is larger than the {samples} training images; "
            f"using batches of {fitting}",
            file=sys.stderr,
        )
    return fitting


def _choose_size(native: int, model: str, requested: int | None) -> int:
    if requested:
        return requested
    spec = get_model_spec(model)
    return native if native >= spec.min_image_size else spec.image_size


def _resized(data: ImageData, size: int) -> ImageData:
    if data.image_size == size:
        return data
    return ImageData(to_square(data.images, size), data.labels, data.classes)


def _load_split(config: ImageTrainConfig, split: str, size: int | None) -> ImageData:
    return load_image_data(
        config.data,
        split,
        data_dir=config.data_dir,
        image_size=size,
        val_fraction=config.val_fraction,
        seed=config.engine.seed,
        limit=config.limit if split == "train" else None,
    )


def _streams(config: ImageTrainConfig) -> bool:
    if not config.data.startswith("folder:"):
        return False
    size = config.image_size or get_model_spec(config.model).image_size
    estimate = estimate_folder_bytes(config.data.removeprefix("folder:"), image_size=size)
    return estimate > config.memory_limit_gb * 2**30


# ---------------------------------------------------------------------------------------------
# train


def train(
    config: ImageTrainConfig,
    resume: str | Path | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> TrainResult:
    """Train an image classifier; ``resume`` (a run directory) continues it exactly.

    ``on_epoch_end(epoch, metrics)`` sees each epoch's validation metrics; returning True
    stops training there.
    """
    dist, device, shard = placement(config.engine.device)
    bs, seed = config.engine.batch_size, config.engine.seed
    pretrained = _fetch_pretrained(config)
    if pretrained is not None and pretrained.image_size and not config.image_size:
        config = replace(config, image_size=pretrained.image_size)
    if _streams(config):
        train_data, val_data, classes, channels, size, mean, std = _stream_sources(config)
        workers = config.workers
        bs = fitting_batch_size(bs, len(train_data), dist.world_size, dist.is_main)
        train_b = StreamBatches(train_data, bs, seed=seed, workers=workers, **shard)
        val_b = StreamBatches(val_data, 256, shuffle=False, workers=workers, **shard)
    else:
        raw = _load_split(config, "train", config.image_size)
        size = _choose_size(raw.image_size, config.model, config.image_size)
        train_set = _resized(raw, size)
        val_set = _resized(_load_split(config, config.validate_on, size), size)
        classes, channels = train_set.classes, train_set.channels
        mean, std = channel_mean_std(train_set.images)
        bs = fitting_batch_size(bs, len(train_set), dist.world_size, dist.is_main)
        train_b = TensorBatches(train_set.images, train_set.labels, bs, seed=seed, **shard)
        val_b = TensorBatches(val_set.images, val_set.labels, 512, shuffle=False, **shard)
    if len(classes) < 2:
        raise StriateError(f"data {config.data!r} has only one class; need at least two")

    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    if pretrained is None:
        net = create_model(config.model, len(classes), channels, size, **config.model_options)
        model = ImageClassifier(net, mean, std)
    else:
        net, model, mean, std = _pretrained_model(config, pretrained, classes, channels, size)
        model = _fine_tuning(config, model, len(train_b))
    augment = build_augmentation(config.augment, channels)
    if augment is not None:
        augment.to(device)  # random parameters drawn where the batch lives
    step = ClassificationStep(augment, config.label_smoothing)

    prefix = f"{config.model}-{_data_label(config.data)}"
    run, resume_from = prepare_run(config, KIND, prefix, resume, dist)
    meta = {
        **stamp(KIND),
        "model": net.striate_config,
        "classes": classes,
        "input": {"channels": channels, "image_size": size},
        "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "data": config.data,
        "augment": config.augment,
    }
    if pretrained is not None:
        meta.update(weights=config.weights, preprocess=pretrained.preprocess)
    result = fit(
        model,
        step,
        train_b,
        val_b,
        config.engine,
        run=run,
        meta=meta,
        resume_from=resume_from,
        dist=dist,
        on_epoch_end=on_epoch_end,
    )
    return TrainResult(run.path if run else None, result, classes)


def _fetch_pretrained(config: ImageTrainConfig) -> Any:
    if not config.weights:
        return None
    from striate.weights import fetch_weights

    return fetch_weights(
        config.weights, config.model, config.data_dir, config.runs_dir, config.engine.progress
    )


def _pretrained_model(
    config: ImageTrainConfig, weights: Any, classes: list[str], channels: int, size: int
) -> tuple[torch.nn.Module, ImageClassifier, torch.Tensor, torch.Tensor]:
    """The model around pretrained weights, normalized as they were trained (their own
    mean and std when they carry them, e.g. ImageNet's; else the data's)."""
    from striate.weights import build_net

    net, _ = build_net(weights, config.model, classes, channels, size, config.model_options)
    mean = torch.tensor(weights.mean) if weights.mean is not None else None
    std = torch.tensor(weights.std) if weights.std is not None else None
    if mean is None or std is None:
        raise StriateError(f"weights {config.weights} carry no input normalization")
    return net, ImageClassifier(net, mean, std), mean, std


def _fine_tuning(config: ImageTrainConfig, model: ImageClassifier, steps_per_epoch: int) -> Any:
    if not config.fine_tune:
        return model
    from striate.weights.finetune import FineTuneClassifier
    from striate.weights.layouts import classifier_layer

    head, _ = classifier_layer(model.net)
    return FineTuneClassifier(
        model.net,
        model.mean.flatten(),
        model.std.flatten(),
        head,
        config.freeze_epochs * steps_per_epoch,
        config.body_lr_factor,
    )


def _data_label(data: str) -> str:
    """The data part of a default run name: the source, or the folder's own name."""
    if not data.startswith("folder:"):
        return data
    return Path(data.removeprefix("folder:")).name or "folder"


def _stream_sources(config: ImageTrainConfig) -> tuple:
    path = config.data.removeprefix("folder:")
    size = config.image_size or get_model_spec(config.model).image_size
    common = {"image_size": size, "val_fraction": config.val_fraction, "seed": config.engine.seed}
    train_data = ImageFolderStream(path, "train", **common)
    val_data = ImageFolderStream(path, config.validate_on, **common)
    sample = torch.stack([train_data[i][0] for i in range(min(len(train_data), 2048))])
    mean, std = channel_mean_std(sample)
    return train_data, val_data, train_data.classes, sample.shape[1], size, mean, std


# ---------------------------------------------------------------------------------------------
# load, evaluate, classify


def load_classifier(
    run_or_checkpoint: str | Path, runs_dir: str | Path = DEFAULT_ROOT
) -> tuple[ImageClassifier, dict[str, Any]]:
    """Rebuild a trained classifier (in eval mode, on CPU) from a run or checkpoint directory."""
    return TASK.load(run_or_checkpoint, runs_dir)


def classifier_from_checkpoint(ckpt: Checkpoint) -> ImageClassifier:
    """The classifier a loaded image-classification checkpoint holds (eval mode, CPU)."""
    cfg = checked.section(ckpt, "model")
    net = checked.built(
        ckpt,
        "model",
        lambda: create_model(
            cfg["name"], cfg["num_classes"], cfg["in_channels"], cfg["image_size"], **cfg["options"]
        ),
    )
    mean, std = checked.normalization(ckpt)
    model = restored(ImageClassifier(net, mean, std), ckpt)
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
    """Accuracy, top-5 accuracy, per-class accuracy and the confusion matrix on a split.

    ``data`` defaults to the source the run was trained on; another source must have the
    same classes. Writes ``eval-SPLIT.json`` and ``confusion-SPLIT.png`` into the run.
    """
    run_path, model, meta = TASK.for_evaluation(run, runs_dir)
    size, classes, channels = (
        meta["input"]["image_size"],
        meta["classes"],
        meta["input"]["channels"],
    )
    source = data or meta["data"]
    dataset = _resized(load_image_data(source, split, data_dir=data_dir, image_size=size), size)
    if dataset.classes != classes:
        raise StriateError(f"data {source!r} has other classes than the model ({classes[:4]}...)")
    if dataset.channels != channels:
        raise StriateError(f"data has {dataset.channels} channels, the model takes {channels}")
    dev = resolve_device(device)
    batches = TensorBatches(dataset.images, dataset.labels, 512, shuffle=False, device=dev)
    model.to(dev)
    logits, labels = [], []
    with torch.inference_mode():
        for images, targets in batches.epoch(0):
            logits.append(model(ClassificationStep.to_float(images)).float().cpu())
            labels.append(targets.cpu())
    logits, labels = torch.cat(logits), torch.cat(labels)
    confusion, counts = classification_counts(labels, logits.argmax(-1), classes)
    report = {
        "split": split,
        "data": source,
        "samples": len(dataset),
        "loss": float(F.cross_entropy(logits, labels)),
        "top5": float(topk_correct(logits, labels, 5) / len(labels)),
        **counts,
    }
    return write_report(run_path, split, report, write, (confusion, classes))


def classify(
    run: str | Path | None,
    images: Sequence[str | Path | torch.Tensor],
    top_k: int = 5,
    runs_dir: str | Path = DEFAULT_ROOT,
    weights: str | None = None,
    model_name: str | None = None,
) -> list[list[tuple[str, float]]]:
    """Top-k (class, probability) pairs for each image, like the lecture's table (see
    :class:`striate.predict.image_classification.ImageClassifierPredictor`, which this calls)."""
    if weights:
        from striate.predict.image_classification import ImageClassifierPredictor

        predictor = ImageClassifierPredictor.from_weights(weights, model_name, runs_dir=runs_dir)
    elif run is None:
        raise StriateError("give a run to classify with, or pretrained weights")
    else:
        predictor = TASK.predictor(run, runs_dir=runs_dir)
    rows = predictor.predict(list(images), top_k=top_k)
    return [[(t["class"], t["probability"]) for t in row["top"]] for row in rows]


TASK = Task(
    KIND, "an image classifier", ImageTrainConfig, train, classifier_from_checkpoint, evaluate
)
resume = TASK.resume
