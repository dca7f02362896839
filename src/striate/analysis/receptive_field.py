"""Receptive fields of the layers of a CNN, analytic and measured.

The lecture's "Receptive Field" slide: deeper units see larger input patches. A layer with
kernel k, stride s, padding p, dilation d reading units of field size r_in, jump (input
pixels between neighbours) j_in and first-unit centre start_in gives::

    r_out = r_in + (k - 1) * d * j_in
    j_out = j_in * s
    start_out = start_in + ((k - 1) / 2 * d - p) * j_in

starting from r = 1, j = 1, start = 0.5 (pixel centres at 0.5, 1.5, ...). Residual blocks
(anything with ``residual`` and ``shortcut`` submodules, e.g. ``BasicBlock`` and
``Bottleneck``) follow their residual branch, the longest path; the shortcut never
enlarges the field. Windows are taken as square (the first entry of a tuple).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from striate.errors import StriateError
from striate.models.lenet import Subsampling

__all__ = [
    "LayerField",
    "empirical_receptive_field",
    "format_table",
    "gradient_box",
    "receptive_fields",
]


@dataclass(frozen=True)
class LayerField:
    """One windowed layer: its receptive field size, jump, first centre and output side."""

    name: str
    kind: str
    kernel: int
    stride: int
    padding: int
    dilation: int
    size: int  # r: side of the input patch that one unit sees
    jump: float  # j: input pixels between neighbouring units
    start: float  # input coordinate of the centre of the first unit's field
    out_size: int  # side of the output map for the given image size


def _first(value: int | tuple[int, ...] | str) -> int | str:
    return value[0] if isinstance(value, tuple) else value


def _window(module: nn.Module) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding, dilation) of a windowed module, or None."""
    if isinstance(module, Subsampling):  # LeNet-5 S2/S4: 2x2 windows, stride 2
        return 2, 2, 0, 1
    if not all(hasattr(module, a) for a in ("kernel_size", "stride", "padding")):
        return None
    k = int(_first(module.kernel_size))
    stride = module.stride if module.stride is not None else k
    d = int(_first(getattr(module, "dilation", 1)))
    p = _first(module.padding)
    if p == "same":
        p = d * (k - 1) // 2
    elif p == "valid":
        p = 0
    return k, int(_first(stride)), int(p), d


def _walk(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """Windowed modules in forward order; residual blocks contribute their residual branch."""
    if _window(module) is not None:
        yield prefix, module
        return
    children = dict(module.named_children())
    if isinstance(children.get("residual"), nn.Module) and "shortcut" in children:
        children = {"residual": children["residual"]}
    for name, child in children.items():
        yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def receptive_fields(model: nn.Module, image_size: int) -> list[LayerField]:
    """The analytic receptive field of every conv/pool layer of ``model``, in forward order.

    Module registration order is taken as forward order (true for the striate models).
    """
    size, jump, start, side = 1, 1.0, 0.5, image_size
    fields = []
    for name, module in _walk(model, ""):
        k, s, p, d = _window(module)  # type: ignore[misc]
        size += (k - 1) * d * int(jump)
        start += ((k - 1) / 2 * d - p) * jump
        jump *= s
        span = side + 2 * p - d * (k - 1) - 1
        side = (-(-span // s) if getattr(module, "ceil_mode", False) else span // s) + 1
        fields.append(LayerField(name, type(module).__name__, k, s, p, d, size, jump, start, side))
    return fields


def format_table(fields: list[LayerField]) -> str:
    """A plain-text table, one row per layer."""
    header = ("layer", "type", "k", "s", "p", "d", "out", "rf", "jump", "start")
    rows = [header]
    for f in fields:
        numbers = (f.kernel, f.stride, f.padding, f.dilation, f.out_size, f.size)
        rows.append((f.name, f.kind, *map(str, numbers), f"{f.jump:g}", f"{f.start:g}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


class _Stop(Exception):
    """Raised by the hook to end the forward pass once the layer output is captured."""


def positive_copy(model: nn.Module) -> nn.Module:
    """A float64 eval-mode copy where no gradient cancels or vanishes: convolutions average
    (weight 1 / fan-in), batch norms are identities, other weights 1, biases 0; max pooling
    (whose gradient reaches one input per window) becomes average pooling, LRN is dropped."""
    net = copy.deepcopy(model).double().eval()
    for name, module in list(net.named_modules()):
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        leaf = name.rpartition(".")[2]
        if isinstance(module, nn.MaxPool2d):
            pool = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
            setattr(parent, leaf, pool)
        elif isinstance(module, nn.LocalResponseNorm):
            setattr(parent, leaf, nn.Identity())
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    with torch.no_grad():
        for module in net.modules():
            weight = getattr(module, "weight", None)
            if isinstance(module, nn.Conv2d):
                weight.fill_(1.0 / weight[0].numel())
            elif isinstance(weight, nn.Parameter):
                weight.fill_(1.0)
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                bias.zero_()
    return net


def gradient_box(
    model: nn.Module, image_size: int, layer_name: str, in_channels: int
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive: the input pixels that reach the centre unit.

    The centre unit is (H // 2, W // 2) of ``layer_name``'s output, summed over channels.
    """
    net = positive_copy(model)
    modules = dict(net.named_modules())
    if layer_name not in modules:
        raise StriateError(f"no layer {layer_name!r}; layers: {', '.join(n for n in modules if n)}")
    captured: list[torch.Tensor] = []

    def hook(_: nn.Module, __: object, output: torch.Tensor) -> None:
        captured.append(output)
        raise _Stop

    x = torch.ones(1, in_channels, image_size, image_size, dtype=torch.float64)
    x.requires_grad_(True)
    handle = modules[layer_name].register_forward_hook(hook)
    try:
        net(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise StriateError(f"layer {layer_name!r} was not called in the forward pass")
    (out,) = captured
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    rows, cols = (x.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    return int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())


def empirical_receptive_field(
    model: nn.Module, image_size: int, layer_name: str, in_channels: int
) -> int:
    """The side of the input region that influences the centre unit of ``layer_name``.

    Measured from the gradient of that unit w.r.t. an image of ones, in a copy of the model
    with positive weights (see :func:`positive_copy`); clipped by the image borders, so
    use an image large enough for the centre unit's field to fit.
    """
    top, left, bottom, right = gradient_box(model, image_size, layer_name, in_channels)
    return max(bottom - top, right - left) + 1
