"""The explicit matrix of a 2-D convolution.

The lecture: a CNN is "similar to multilayer neural network, but weight matrices now have a
special structure (Toeplitz or block Toeplitz) due to convolutions." :func:`conv_matrix`
writes that matrix out: for a convolution ``conv`` and an input x of shape
(C_in, H, W), ``conv_matrix(conv, (H, W)) @ x.flatten() == conv(x).flatten() - bias``.

Rows are indexed by (out channel, output row, output column) and columns by (in channel,
input row, input column), both in ``flatten`` order, so T is a C_out x C_in grid of blocks
of shape (H_out * W_out, H * W). At stride 1 without padding effects each block is doubly
block Toeplitz: entry ((y, x), (u, v)) of block (o, c) is ``weight[o, c, i, j]`` when
u = y + i * d - p and v = x + j * d - p, i.e. it depends only on (u - y, v - x). Stride s
keeps every s-th row of the stride-1 matrix.

The matrix is built by applying the convolution (without bias) to the standard basis of
the input space in batches, so it is exact for any padding mode and for subclasses whose
forward is affine in the input (e.g. LeNet-5's masked C3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from striate.errors import StriateError

__all__ = ["conv_bias_vector", "conv_matrix", "conv_matrix_with_bias"]

_BATCH = 1024  # basis vectors per convolution call


def _size(input_size: tuple[int, int] | int) -> tuple[int, int]:
    if isinstance(input_size, int):
        return input_size, input_size
    h, w = input_size
    return int(h), int(w)


def _check(conv: nn.Conv2d) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise StriateError(f"conv_matrix needs an nn.Conv2d, got {type(conv).__name__}")
    if conv.groups != 1:
        raise StriateError(f"conv_matrix supports groups=1 only, got groups={conv.groups}")


@torch.no_grad()
def conv_matrix(conv: nn.Conv2d, input_size: tuple[int, int] | int) -> torch.Tensor:
    """T of shape (C_out * H_out * W_out, C_in * H * W) with T @ x.flatten() == conv(x) - b.

    In the dtype and on the device of ``conv.weight``; ``input_size`` is (H, W) or a side.
    Memory is O(C_in H W * C_out H_out W_out): meant for small layers and teaching.
    """
    _check(conv)
    h, w = _size(input_size)
    n_in = conv.in_channels * h * w
    weight = conv.weight
    params = {name: p for name, p in conv.named_parameters()}
    if conv.bias is not None:
        params["bias"] = torch.zeros_like(conv.bias)  # adding zero keeps T exact
    columns = []
    for first in range(0, n_in, _BATCH):
        count = min(_BATCH, n_in - first)
        basis = torch.zeros(count, n_in, dtype=weight.dtype, device=weight.device)
        basis[torch.arange(count), torch.arange(first, first + count)] = 1.0
        images = basis.view(count, conv.in_channels, h, w)
        columns.append(functional_call(conv, params, (images,)).flatten(1))
    return torch.cat(columns).T.contiguous()


def conv_bias_vector(conv: nn.Conv2d, input_size: tuple[int, int] | int) -> torch.Tensor:
    """b of length C_out * H_out * W_out: each channel's bias repeated over its map."""
    _check(conv)
    h, w = _size(input_size)
    probe = torch.zeros(1, conv.in_channels, h, w, dtype=conv.weight.dtype)
    with torch.no_grad():
        out_h, out_w = conv(probe.to(conv.weight.device)).shape[2:]
    if conv.bias is None:
        return torch.zeros(conv.out_channels * out_h * out_w, dtype=conv.weight.dtype)
    return conv.bias.detach().repeat_interleave(out_h * out_w)


def conv_matrix_with_bias(
    conv: nn.Conv2d, input_size: tuple[int, int] | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, b) with conv(x).flatten() == T @ x.flatten() + b: the layer as an affine map."""
    return conv_matrix(conv, input_size), conv_bias_vector(conv, input_size)
