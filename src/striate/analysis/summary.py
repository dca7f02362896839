"""A model summary: per layer, the output shape, the parameters, the multiply-adds and (for
convolutional layers) the lecture's receptive field -- the table of Keras' ``summary()``
and torchinfo, measured by running the model once on an example input.

A *layer* is a module without children, or a recurrent layer as a whole (its cells are its
parameters; the fast path never calls them one by one). Multiply-adds (MACs), per example
input, counted where the arithmetic is:

* convolution: every output element costs ``(C_in / groups) * k_h * k_w`` MACs;
* linear: every output element costs ``in_features`` MACs;
* recurrent layer: every (sequence, time step) costs one product with each cell's
  ``W_ih`` and ``W_hh`` (the lecture's ``W_xh x_t + W_hh h_{t-1}``, per gate block), so
  ``B * T * sum(|W_ih| + |W_hh|)``;
* everything else (activations, normalization, pooling, attention scores) counts 0.

A layer called several times (a decoder step in a loop) adds up its calls; its shape is the
one of its last call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from striate.analysis.receptive_field import receptive_fields
from striate.errors import StriateError
from striate.nn.recurrent import Recurrent

__all__ = ["LayerSummary", "ModelSummary", "format_summary", "summarize"]


@dataclass
class LayerSummary:
    name: str
    kind: str
    output_shape: list[int] | None
    params: int
    macs: int
    receptive_field: int | None = None  # r, input pixels one output unit sees
    jump: float | None = None  # input pixels between neighbouring output units


@dataclass
class ModelSummary:
    layers: list[LayerSummary]
    params: int  # every parameter, counted once (shared ones too)
    trainable: int
    macs: int
    input_shapes: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_UNITS = (Recurrent, nn.RNNBase)


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The summary's layers in registration order: leaves, and recurrent layers whole."""
    found: list[tuple[str, nn.Module]] = []
    inside: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(module, _UNITS):
            inside.append(name)
            found.append((name, module))
        elif not any(True for _ in module.children()):
            found.append((name, module))
    return found


def _first_tensor(value: Any) -> torch.Tensor | None:
    if torch.is_tensor(value):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, _UNITS):
        x = _first_tensor(inputs)
        steps = x.shape[0] * x.shape[1] if x is not None and x.dim() >= 2 else 1
        if isinstance(module, nn.RNNBase) and not module.batch_first and x is not None:
            steps = x.shape[0] * x.shape[1]
        weights = sum(p.numel() for n, p in module.named_parameters() if "weight_" in n)
        return steps * weights
    return 0


def summarize(
    model: nn.Module, inputs: Sequence[Any], image_size: int | None = None
) -> ModelSummary:
    """Run ``model(*inputs)`` once (eval mode, no gradients) and tabulate its layers.

    ``image_size`` (square image models): add each windowed layer's receptive field and
    jump from :func:`striate.analysis.receptive_field.receptive_fields`.
    """
    units = _units(model)
    records: dict[str, dict[str, Any]] = {name: {"shape": None, "macs": 0} for name, _ in units}

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: Any) -> None:
            out = _first_tensor(output)
            if out is None:
                return
            records[name]["shape"] = list(out.shape)
            records[name]["macs"] += _macs(module, args, out)

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in units]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StriateError(f"the model does not run on this input: {first}") from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    fields = {}
    if image_size is not None:
        fields = {f.name: f for f in receptive_fields(model, image_size)}
    layers = []
    for name, module in units:
        field = fields.get(name)
        layers.append(
            LayerSummary(
                name,
                type(module).__name__,
                records[name]["shape"],
                sum(p.numel() for p in module.parameters()),
                records[name]["macs"],
                field.size if field else None,
                field.jump if field else None,
            )
        )
    unique = {id(p): p for p in model.parameters()}.values()
    return ModelSummary(
        layers,
        sum(p.numel() for p in unique),
        sum(p.numel() for p in unique if p.requires_grad),
        sum(layer.macs for layer in layers),
        [list(x.shape) for x in inputs if torch.is_tensor(x)],
    )


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def format_summary(summary: ModelSummary, title: str = "") -> str:
    """The plain-text table: layer, type, output shape, params, MACs, receptive field."""
    header = ("layer", "type", "output", "params", "MACs", "rf", "jump")
    rows = [header]
    for layer in summary.layers:
        shape = "x".join(map(str, layer.output_shape)) if layer.output_shape else "(not called)"
        rf = str(layer.receptive_field) if layer.receptive_field else ""
        jump = f"{layer.jump:g}" if layer.jump else ""
        rows.append(
            (layer.name, layer.kind, shape, _count(layer.params), _count(layer.macs), rf, jump)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title] if title else []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
    inputs = ", ".join("x".join(map(str, s)) for s in summary.input_shapes)
    lines.append(
        f"total: {summary.params:,} parameters ({summary.trainable:,} trainable), "
        f"{summary.macs:,} multiply-adds for an input of {inputs}"
    )
    return "\n".join(lines)
