"""The numbers behind the receptive-field picture: where a unit's field lies on the input.

For layer l with field size r, jump j and first centre ``start`` (see
``striate.analysis.receptive_field``) the unit at output index u is centred at
``start + u * j`` and sees the input pixels within r / 2 of that centre. The picture draws
that box for the centre unit u = out_size // 2 and two measured gradient maps beside it:

* the support: |d unit / d x| in a copy of the network with positive weights, average
  pooling and an image of ones (:func:`receptive_field.positive_copy`), where no path
  cancels, so every pixel in the field is non-zero and the values count the paths;
* the effective field (Luo et al. 2016): |d unit / d x| of the network as it is, for the
  given image -- the part of the field that actually matters for this input.
"""

from __future__ import annotations

import torch
from torch import nn

from striate.analysis.inspect_cnn import (
    analysis_copy,
    as_model_input,
    find_layer,
    inner_network,
    module_key,
)
from striate.analysis.receptive_field import LayerField, positive_copy
from striate.errors import StriateError

__all__ = ["centre_unit_box", "choose_field_layer", "unit_gradient"]


def centre_unit_box(field: LayerField) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) edges, in pixels (pixel i spans [i, i + 1]), of the analytic
    field of the centre unit of ``field``'s layer. It may reach past the image (padding)."""
    centre = field.start + (field.out_size // 2) * field.jump
    half = field.size / 2
    return centre - half, centre - half, centre + half, centre + half


def choose_field_layer(fields: list[LayerField], layer: str | None, image_size: int) -> LayerField:
    """The named layer's field, or by default the deepest one still smaller than the image."""
    if not fields:
        raise StriateError("the model has no convolution or pooling layer")
    if layer is None:
        smaller = [f for f in fields if f.size < image_size]
        return smaller[-1] if smaller else fields[-1]
    for field in fields:
        if field.name == layer.removeprefix("net."):
            return field
    names = ", ".join(f.name for f in fields)
    raise StriateError(f"{layer!r} is not a convolution or pooling layer; choose one of: {names}")


class _Stop(Exception):
    pass


def _centre_gradient(model: nn.Module, x: torch.Tensor, module_name: str) -> torch.Tensor:
    """|d (sum over channels of the centre unit of module_name) / d x|, summed over channels."""
    captured: list[torch.Tensor] = []

    def hook(_: nn.Module, __: object, output: torch.Tensor) -> None:
        captured.append(output)
        raise _Stop

    x = x.clone().requires_grad_(True)
    handle = model.get_submodule(module_name).register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured or captured[0].dim() != 4:
        raise StriateError(f"layer {module_name!r} does not output (N, C, H, W) maps")
    out = captured[0]
    (grad,) = torch.autograd.grad(out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum(), x)
    return grad[0].abs().sum(0)


def unit_gradient(
    model: nn.Module, image: torch.Tensor, layer: str, positive: bool = False
) -> torch.Tensor:
    """(H, W) map of |d unit / d x| for the centre unit of ``layer`` (channels summed).

    ``positive``: measured in the positive-weight copy on an image of ones (the field's
    support, independent of the image's pixels); otherwise through ``model`` itself, in
    float64, for ``image`` (C, H, W) in [0, 1].
    """
    find_layer(model, layer)
    x = as_model_input(model, image)[:1].double()
    if positive:
        net = positive_copy(inner_network(model))
        name = layer.removeprefix("net.")
        return _centre_gradient(net, torch.ones_like(x), name).float()
    net = analysis_copy(model).double()
    return _centre_gradient(net, x, module_key(model, layer)).float()
