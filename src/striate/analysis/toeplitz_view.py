"""The structure of a convolution's matrix, reduced to something a picture can show.

``striate.analysis.toeplitz.conv_matrix`` writes a convolution out as the (block)
Toeplitz matrix T with conv(x) = T x + b. T has C_out x C_in blocks of shape
(H_out W_out, H W); inside each block the weights repeat along the diagonals. The view
keeps T as it is when it fits in ``max_side`` x ``max_side`` cells, and otherwise reduces
each cell to the entry of largest magnitude in its block of T (so a cell is zero exactly
when its block of T is all zero). Matrices above ``max_entries`` entries are refused
before anything is allocated.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from striate.analysis.toeplitz import conv_matrix
from striate.errors import StriateError

__all__ = ["MAX_ENTRIES", "ToeplitzView", "matrix_shape", "toeplitz_view"]

MAX_ENTRIES = 2**26  # 64 Mi entries: 256 MiB in float32


@dataclass(frozen=True)
class ToeplitzView:
    """A displayable version of T and what it stands for."""

    image: torch.Tensor  # (rows', cols'): T, or T reduced by ``factor`` per axis
    shape: tuple[int, int]  # T's shape: (C_out H_out W_out, C_in H W)
    block: tuple[int, int]  # one block's shape: (H_out W_out, H W)
    blocks: tuple[int, int]  # (C_out, C_in)
    nonzeros: int  # non-zero entries of T
    factor: tuple[int, int]  # rows and columns of T per cell of ``image``


def matrix_shape(conv: nn.Conv2d, input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(rows, cols, H_out, W_out) of T for an input of ``input_size`` (H, W), cheaply."""
    if not isinstance(conv, nn.Conv2d):
        raise StriateError(f"the layer is a {type(conv).__name__}, not a convolution")
    h, w = input_size
    if h < 1 or w < 1:
        raise StriateError(f"input size must be positive, got {h}x{w}")
    probe = torch.zeros(1, conv.in_channels, h, w, dtype=conv.weight.dtype)
    try:
        with torch.no_grad():
            out_h, out_w = conv(probe).shape[2:]
    except RuntimeError as exc:
        raise StriateError(f"input {h}x{w} is too small for this layer ({exc})") from None
    return conv.out_channels * out_h * out_w, conv.in_channels * h * w, out_h, out_w


def _reduce(matrix: torch.Tensor, max_side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Each cell: the signed entry of largest magnitude among factor x factor entries."""
    rows, cols = matrix.shape
    factor = (max(1, math.ceil(rows / max_side)), max(1, math.ceil(cols / max_side)))
    if factor == (1, 1):
        return matrix, factor
    padded = F.pad(matrix, (0, -cols % factor[1], 0, -rows % factor[0]))[None, None]
    magnitude, where = F.max_pool2d(padded.abs(), factor, return_indices=True)
    signs = padded.flatten().gather(0, where.flatten()).sign().view_as(magnitude)
    return (magnitude * signs)[0, 0], factor


def toeplitz_view(
    conv: nn.Conv2d,
    input_size: tuple[int, int],
    max_side: int = 1200,
    max_entries: int = MAX_ENTRIES,
) -> ToeplitzView:
    """T = conv_matrix(conv, input_size) (float32, CPU) as a picture of at most
    ``max_side`` cells per side; refuses matrices of more than ``max_entries`` entries."""
    rows, cols, out_h, out_w = matrix_shape(conv, input_size)
    if rows * cols > max_entries:
        raise StriateError(
            f"the matrix would be {rows} x {cols} ({rows * cols * 4 / 2**20:,.0f} MiB); "
            f"the limit is {max_entries:,} entries -- use a smaller input size"
        )
    layer = conv if conv.weight.dtype == torch.float32 else copy.deepcopy(conv).float()
    matrix = conv_matrix(layer, input_size).cpu()
    image, factor = _reduce(matrix, max_side)
    h, w = input_size
    return ToeplitzView(
        image=image,
        shape=(rows, cols),
        block=(out_h * out_w, h * w),
        blocks=(conv.out_channels, conv.in_channels),
        nonzeros=int((matrix != 0).sum()),
        factor=factor,
    )
