"""What a forward pass would allocate, measured before it runs.

An image side or a sequence length a person types can make one forward pass take more
memory than the machine has (``summary resnet50 --input-size 4096`` asks for ~45 GiB of
activations). :func:`check_activations` runs the model once on PyTorch's ``meta`` device,
which computes shapes but allocates nothing, adds up what every layer would output, and
refuses, in one line naming the limit, a pass that would exceed the same limit as a resize
(:data:`~striate.data.transforms.functional.MAX_RESIZE_BYTES`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from striate.data.transforms.functional import MAX_RESIZE_BYTES
from striate.errors import StriateError

__all__ = ["activation_bytes", "check_activations"]


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value if value.is_meta else torch.empty_like(value, device="meta")
    return value


def activation_bytes(net: nn.Module, inputs: tuple[Any, ...]) -> int | None:
    """Bytes the outputs of ``net``'s leaf modules would take for ``inputs`` (tensors, real
    or ``meta``), without allocating them; None where the model cannot run on ``meta`` (a
    layer that reads values, not only shapes), so the caller cannot tell."""
    total = 0

    def count(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in _tensors(output))

    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    state = {name: _meta(t) for name, t in (*net.named_parameters(), *net.named_buffers())}
    try:
        with torch.no_grad():
            functional_call(net, state, tuple(_meta(x) for x in inputs))
    except Exception:  # an op without a meta kernel: no estimate, so no refusal
        return None
    finally:
        for handle in handles:
            handle.remove()
    return total


def check_activations(net: nn.Module, inputs: tuple[Any, ...], what: str, passes: int = 1) -> None:
    """Refuse, before allocating, a forward pass of ``net`` on ``inputs`` whose activations
    (times ``passes``: 2 where gradients are taken too) would exceed the resize limit of
    :data:`MAX_RESIZE_BYTES`; ``what`` names the input in the one-line refusal ("a
    4096x4096 image")."""
    inputs_bytes = sum(t.numel() * t.element_size() for t in _tensors(inputs))
    layers = activation_bytes(net, inputs)
    needed = inputs_bytes + passes * (layers or 0)
    if needed > MAX_RESIZE_BYTES:
        raise StriateError(
            f"{what} would take {needed / 2**30:.1f} GiB (input and activations), over the "
            f"limit of {MAX_RESIZE_BYTES / 2**30:.0f} GiB; choose a smaller size"
        )
