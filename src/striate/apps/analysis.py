"""Seeing inside models: the analyses behind ``striate analyze ...``.

Each function takes a registered model name or a trained run, so the same question can be
asked of an architecture and of the network a run produced. The picture functions write a
PNG -- by default into ``RUN/analysis/`` (or the current directory for a bare model name)
-- and return its path; images pass through the run's own preprocessing (centre-crop to a
square, resize, the stored mean/std inside the classifier).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.analysis import inspect_cnn
from striate.analysis.field_view import centre_unit_box, choose_field_layer, unit_gradient
from striate.analysis.inspect_cnn import (
    filter_tiles,
    find_layer,
    first_conv,
    first_layer_filters,
    grad_cam,
    inner_network,
)
from striate.analysis.memory import check_activations
from striate.analysis.receptive_field import LayerField, receptive_fields
from striate.analysis.toeplitz_view import matrix_shape, toeplitz_view
from striate.apps.image_classification import load_classifier
from striate.artifacts.plots import (
    plot_feature_maps,
    plot_filters,
    plot_receptive_field,
    plot_saliency,
    plot_toeplitz,
    plot_worst_errors,
)
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir, locate_checkpoint
from striate.atomic import write_json
from striate.data.sources.base import ImageData
from striate.data.sources.images import load_image_data, read_image_file
from striate.data.transforms.functional import to_square
from striate.errors import StriateError
from striate.models import create_model, get_model_spec, list_models
from striate.models.classifier import ImageClassifier


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
    return classifier.net, _input_side(meta, image_size)


def _input_side(meta: dict[str, Any], image_size: int | None) -> int:
    """A run's input side, or ``image_size`` when given and at least the model's smallest
    (a smaller picture would not reach the deepest layers: one line, not a conv error)."""
    if image_size is None:
        return meta["input"]["image_size"]
    name = meta["model"]["name"]
    smallest = get_model_spec(name).min_image_size
    if image_size < smallest:
        raise StriateError(
            f"model {name!r} needs images of at least {smallest}px, got {image_size}px"
        )
    return image_size


def receptive_field_table(
    model_or_run: str | Path,
    image_size: int | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> list[LayerField]:
    """Receptive field size, jump and start of every layer (see ``analysis.receptive_field``)."""
    net, size = resolve_network(model_or_run, image_size, runs_dir=runs_dir)
    return receptive_fields(net, size)


# ---------------------------------------------------------------------------------------------
# pictures of a CNN: filters, feature maps, saliency, worst errors, fields, Toeplitz


def _safe(text: str) -> str:
    """A piece of a file name: letters, digits, ``.``, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _output(out: str | Path | None, base: Path, name: str) -> Path:
    """``out`` if given, else ``base/name``."""
    return Path(out) if out is not None else base / name


def _run_with_model(
    run: str | Path, runs_dir: str | Path
) -> tuple[ImageClassifier, dict[str, Any], Path]:
    """(classifier, checkpoint meta, the run's ``analysis`` folder) of an image run."""
    model, meta = load_classifier(run, runs_dir)
    run_path, _ = locate_checkpoint(run, runs_dir)
    return model, meta, run_path / "analysis"


def _prepared_image(image: str | Path | torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """An image file or tensor as the run sees it: (C, size, size) floats in [0, 1]."""
    if isinstance(image, torch.Tensor):
        pixels = image
    else:
        if not Path(image).is_file():
            raise StriateError(f"no image file {image}")
        pixels = read_image_file(image, channels)
    if pixels.dim() != 3 or pixels.shape[0] != channels:
        raise StriateError(
            f"image of shape {tuple(pixels.shape)} does not fit: the model takes {channels} "
            "channel(s)"
        )
    pixels = pixels.float().div(255) if pixels.dtype == torch.uint8 else pixels.float()
    return to_square(pixels, size)


def _image_label(image: str | Path | torch.Tensor) -> str:
    return "tensor" if isinstance(image, torch.Tensor) else _safe(Path(image).stem)


def filters(
    run: str | Path, out: str | Path | None = None, runs_dir: str | Path = DEFAULT_ROOT
) -> Path:
    """Draw the first convolution's filters of a run as a grid of tiles (``filters.png``)."""
    model, _, folder = _run_with_model(run, runs_dir)
    name, _ = first_conv(model)  # type: ignore[misc]
    weights = first_layer_filters(model)
    title = f"first-layer filters: {name}, {tuple(weights.shape)} (grey = 0)"
    return plot_filters(filter_tiles(weights), _output(out, folder, "filters.png"), title)


def feature_maps(
    run: str | Path,
    image: str | Path | torch.Tensor,
    layer: str,
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> Path:
    """Draw the output maps of ``layer`` for one image (``features-LAYER-IMAGE.png``)."""
    model, meta, folder = _run_with_model(run, runs_dir)
    pixels = _prepared_image(image, meta["input"]["channels"], meta["input"]["image_size"])
    maps = inspect_cnn.feature_maps(model, pixels, layer)
    if maps.dim() != 4:
        raise StriateError(
            f"layer {layer!r} outputs {tuple(maps.shape[1:])} vectors, not maps; pick a "
            f"convolutional layer such as {first_conv(model)[0]}"  # type: ignore[index]
        )
    target = _output(out, folder, f"features-{_safe(layer)}-{_image_label(image)}.png")
    title = f"{layer}: {maps.shape[1]} maps of {maps.shape[2]}x{maps.shape[3]}"
    if maps.shape[1] > 64:
        title += " (first 64 shown)"
    return plot_feature_maps(pixels, maps[0], target, title)


def _class_index(target_class: str | int | None, classes: list[str]) -> int | None:
    if target_class is None or isinstance(target_class, int):
        if isinstance(target_class, int) and not 0 <= target_class < len(classes):
            raise StriateError(f"class index {target_class} out of range 0..{len(classes) - 1}")
        return target_class
    if target_class in classes:
        return classes.index(target_class)
    if target_class.isdigit():
        return _class_index(int(target_class), classes)
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    raise StriateError(f"unknown class {target_class!r}; classes: {shown}")


def saliency(
    run: str | Path,
    image: str | Path | torch.Tensor,
    target_class: str | int | None = None,
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    layer: str | None = None,
) -> Path:
    """Draw saliency and Grad-CAM for one image, beside the image (``saliency-IMAGE-CLASS.png``).

    ``target_class`` (a class name or index) defaults to the predicted class; ``layer`` is
    Grad-CAM's layer (default: the last one with spatial maps).
    """
    model, meta, folder = _run_with_model(run, runs_dir)
    classes = meta["classes"]
    pixels = _prepared_image(image, meta["input"]["channels"], meta["input"]["image_size"])
    wanted = _class_index(target_class, classes)
    saliency_map, _, cls = inspect_cnn.saliency_map(model, pixels, wanted)
    cam, coarse, _, cam_layer = grad_cam(model, pixels, cls, layer)
    with torch.no_grad():
        probs = model(pixels[None]).softmax(-1)[0]
    best = int(probs.argmax())
    title = (
        f"predicted {classes[best]} ({float(probs[best]):.1%}); "
        f"explaining {classes[cls]} ({float(probs[cls]):.1%})"
    )
    cam_title = f"Grad-CAM at {cam_layer} ({coarse.shape[0]}x{coarse.shape[1]})"
    name = f"saliency-{_image_label(image)}-{_safe(classes[cls])}.png"
    return plot_saliency(pixels, saliency_map, cam, _output(out, folder, name), title, cam_title)


def _run_split(
    run: str | Path,
    runs_dir: str | Path,
    meta: dict[str, Any],
    split: str,
    data: str | None,
    data_dir: str | None,
) -> ImageData:
    """The split the run's preprocessing sees: resized, classes and channels checked."""
    run_path, _ = locate_checkpoint(run, runs_dir)
    found = RunDir(run_path)
    config = found.read_config() if found.config_file.is_file() else {}
    size = meta["input"]["image_size"]
    source = data or meta["data"]
    dataset = load_image_data(
        source,
        split,
        data_dir=data_dir or config.get("data_dir"),
        image_size=size,
        val_fraction=config.get("val_fraction", 0.1) if split != "test" else 0.1,
        seed=config.get("engine", {}).get("seed", 0),
    )
    if dataset.classes != meta["classes"]:
        raise StriateError(f"data {source!r} has other classes than the model")
    if dataset.channels != meta["input"]["channels"]:
        raise StriateError(
            f"data has {dataset.channels} channels, the model takes {meta['input']['channels']}"
        )
    if dataset.image_size != size:
        dataset = ImageData(to_square(dataset.images, size), dataset.labels, dataset.classes)
    return dataset


def worst_errors(
    run: str | Path,
    split: str = "test",
    count: int = 16,
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    data: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """Draw the ``count`` most confidently wrong images of a split with their top-5
    (``worst-errors-SPLIT.png``, and the same list as ``worst-errors-SPLIT.json``)."""
    model, meta, folder = _run_with_model(run, runs_dir)
    dataset = _run_split(run, runs_dir, meta, split, data, data_dir)
    cases = inspect_cnn.worst_errors(model, dataset.images, dataset.labels, count)
    classes = meta["classes"]
    target = _output(out, folder, f"worst-errors-{split}.png")
    rows = [
        {
            "index": c.index,
            "true": classes[c.label],
            "top": [{"class": classes[i], "probability": p} for i, p in c.top],
        }
        for c in cases
    ]
    write_json(target.with_suffix(".json"), {"split": split, "errors": rows})
    images = dataset.images[[c.index for c in cases]].float() / 255
    tops = [[(classes[i], p) for i, p in c.top] for c in cases]
    title = f"most confidently wrong: {len(cases)} of the {split} split ({len(dataset)} images)"
    return plot_worst_errors(images, [classes[c.label] for c in cases], tops, target, title)


def _model_or_run(
    model_or_run: str | Path, image_size: int | None, runs_dir: str | Path
) -> tuple[nn.Module, int, int, Path, str]:
    """(model taking [0, 1] images, input side, channels, output folder, file prefix)."""
    if str(model_or_run) in list_models():
        net = create_model(str(model_or_run), 10, 3, image_size)
        return net.eval(), net.striate_config["image_size"], 3, Path("."), f"{model_or_run}-"
    model, meta, folder = _run_with_model(model_or_run, runs_dir)
    return model, _input_side(meta, image_size), meta["input"]["channels"], folder, ""


def receptive_field_picture(
    model_or_run: str | Path,
    layer: str | None = None,
    image: str | Path | torch.Tensor | None = None,
    out: str | Path | None = None,
    image_size: int | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> Path:
    """Draw the analytic receptive field of ``layer``'s centre unit over an image (grey when
    none is given), beside the measured support and effective gradient maps
    (``receptive-field-LAYER.png``). ``layer`` defaults to the deepest layer whose field is
    smaller than the image."""
    model, size, channels, folder, prefix = _model_or_run(model_or_run, image_size, runs_dir)
    # two passes with gradients over the picture: refuse a side they could not fit in memory
    shape = (1, channels, size, size)
    check_activations(model, (torch.empty(shape, device="meta"),), f"a {size}x{size} image", 2)
    fields = receptive_fields(inner_network(model), size)
    field = choose_field_layer(fields, layer, size)
    if image is None:
        pixels = torch.full((channels, size, size), 0.5)
    else:
        pixels = _prepared_image(image, channels, size)
    box = centre_unit_box(field)
    support = unit_gradient(model, pixels, field.name, positive=True)
    effective = unit_gradient(model, pixels, field.name)
    title = (
        f"{field.name}: field {field.size}x{field.size} px, jump {field.jump:g}, "
        f"centre unit ({field.out_size // 2}, {field.out_size // 2}) of "
        f"{field.out_size}x{field.out_size}, input {size}x{size}"
    )
    name = f"{prefix}receptive-field-{_safe(field.name)}.png"
    return plot_receptive_field(pixels, box, support, effective, _output(out, folder, name), title)


def _conv_layer(model: nn.Module, layer: str) -> nn.Conv2d:
    module = find_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in inner_network(model).named_modules() if isinstance(m, nn.Conv2d)]
        raise StriateError(
            f"layer {layer!r} is a {type(module).__name__}, not a convolution; "
            f"convolutions: {', '.join(convs[:12])}"
        )
    return module


def toeplitz_shape(
    model_or_run: str | Path,
    layer: str,
    input_size: tuple[int, int],
    runs_dir: str | Path = DEFAULT_ROOT,
) -> dict[str, Any]:
    """Shape of ``layer``'s convolution matrix for an input of ``input_size`` (H, W):
    ``rows``, ``cols``, ``blocks`` (C_out, C_in) and ``block`` (H_out W_out, H W)."""
    model, *_ = _model_or_run(model_or_run, None, runs_dir)
    conv = _conv_layer(model, layer)
    rows, cols, out_h, out_w = matrix_shape(conv, input_size)
    h, w = input_size
    return {
        "rows": rows,
        "cols": cols,
        "blocks": (conv.out_channels, conv.in_channels),
        "block": (out_h * out_w, h * w),
    }


def toeplitz_picture(
    model_or_run: str | Path,
    layer: str,
    input_size: tuple[int, int],
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> Path:
    """Draw the structure of ``layer``'s (block) Toeplitz matrix for an input of
    ``input_size`` = (H, W) at that layer (``toeplitz-LAYER-HxW.png``); matrices of more
    than ``MAX_ENTRIES`` entries are refused (see :func:`toeplitz_shape` for the shape)."""
    model, _, _, folder, prefix = _model_or_run(model_or_run, None, runs_dir)
    view = toeplitz_view(_conv_layer(model, layer), input_size, max_side=600)
    (rows, cols), (c_out, c_in) = view.shape, view.blocks
    h, w = input_size
    title = (
        f"{layer} as a matrix: {rows} x {cols}, {c_out} x {c_in} blocks of "
        f"{view.block[0]} x {view.block[1]}; {view.nonzeros:,} non-zeros "
        f"({view.nonzeros / (rows * cols):.2%})"
    )
    if view.factor != (1, 1):
        title += f"\n(each cell: the largest of {view.factor[0]} x {view.factor[1]} entries)"
    name = f"{prefix}toeplitz-{_safe(layer)}-{h}x{w}.png"
    return plot_toeplitz(view.image, view.shape, view.block, _output(out, folder, name), title)
