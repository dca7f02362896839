"""Stride and pooling arithmetic and the pooling gradients the lecture describes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.errors import StriateError
from striate.nn.conv import ConvBNAct, conv_output_size, pool2d

X = torch.tensor(
    [
        [1.0, 5.0, 2.0, 0.0],
        [3.0, 2.0, 8.0, 1.0],
        [0.0, 4.0, 1.0, 1.0],
        [7.0, 1.0, 2.0, 6.0],
    ]
).view(1, 1, 4, 4)


def _input_grad(pool: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    pool(x).backward(upstream)
    return x.grad


def test_max_pooling_sends_error_to_the_argmax_only() -> None:
    pool = pool2d("max", 2)
    assert torch.equal(pool(X), torch.tensor([[5.0, 8.0], [7.0, 6.0]]).view(1, 1, 2, 2))
    upstream = torch.tensor([[10.0, 20.0], [30.0, 40.0]]).view(1, 1, 2, 2)
    expected = torch.tensor(
        [
            [0.0, 10.0, 0.0, 0.0],
            [0.0, 0.0, 20.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [30.0, 0.0, 0.0, 40.0],
        ]
    ).view(1, 1, 4, 4)
    assert torch.equal(_input_grad(pool, X, upstream), expected)


def test_average_pooling_splits_error_equally() -> None:
    pool = pool2d("avg", 2)
    assert torch.equal(pool(X), torch.tensor([[2.75, 2.75], [3.0, 2.5]]).view(1, 1, 2, 2))
    upstream = torch.tensor([[4.0, 8.0], [12.0, 16.0]]).view(1, 1, 2, 2)
    expected = upstream.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4
    assert torch.equal(_input_grad(pool, X, upstream), expected)


def test_overlapping_max_pooling_accumulates_error_of_shared_winner() -> None:
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # the centre belongs to all four 3x3 windows of stride 2
    grad = _input_grad(pool2d("max", 3, 2), x, torch.ones(1, 1, 2, 2))
    assert grad[0, 0, 2, 2].item() == 4.0
    assert grad.sum().item() == 4.0


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size", [5, 6, 7, 13, 27, 32, 55])
def test_overlapping_pooling_output_size(kind: str, size: int) -> None:
    out = pool2d(kind, 3, 2)(torch.randn(1, 2, size, size))
    expected = conv_output_size(size, 3, 2)
    assert out.shape == (1, 2, expected, expected)


def test_alexnet_pooling_chain_sizes() -> None:
    side = conv_output_size(224, 11, 4, 2)
    sides = [side]
    for _ in range(3):
        side = conv_output_size(side, 3, 2)
        sides.append(side)
    assert sides == [55, 27, 13, 6]


def test_stride_larger_than_kernel_skips_pixels() -> None:
    x = torch.arange(49.0).view(1, 1, 7, 7)
    pool = pool2d("max", 2, 3)
    out = pool(x)
    assert out.shape == (1, 1, conv_output_size(7, 2, 3), conv_output_size(7, 2, 3)) == (1, 1, 2, 2)
    assert torch.equal(out, torch.tensor([[8.0, 11.0], [29.0, 32.0]]).view(1, 1, 2, 2))
    grad = _input_grad(pool, x, torch.ones_like(out))
    assert grad[0, 0, 2].abs().sum() == 0 and grad[0, 0, :, 2].abs().sum() == 0  # skipped


def test_default_stride_is_kernel() -> None:
    pool = pool2d("max", 3)
    assert pool.stride == 3 and pool(torch.randn(1, 1, 9, 9)).shape[-1] == 3


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [
        (32, 3, 1, 1, 1),
        (32, 5, 2, 2, 1),
        (31, 3, 2, 1, 1),
        (224, 7, 2, 3, 1),
        (20, 3, 1, 2, 2),
        (9, 9, 1, 0, 1),
        (10, 3, 4, 0, 1),
    ],
)
def test_conv_output_size_matches_conv2d(size, kernel, stride, padding, dilation) -> None:
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
    out = conv(torch.randn(1, 1, size, size))
    assert out.shape[-1] == conv_output_size(size, kernel, stride, padding, dilation)


def test_conv_output_size_rejects_too_small_input_and_bad_windows() -> None:
    with pytest.raises(StriateError, match="too small"):
        conv_output_size(4, 5)
    with pytest.raises(StriateError):
        conv_output_size(10, 3, stride=0)
    with pytest.raises(StriateError, match="unknown pooling"):
        pool2d("median", 2)
    with pytest.raises(StriateError):
        pool2d("max", 2, padding=2)


def test_conv_bn_act_keeps_size_and_has_no_conv_bias() -> None:
    layer = ConvBNAct(3, 8, 3)
    assert layer.conv.bias is None and isinstance(layer.bn, nn.BatchNorm2d)
    out = layer(torch.randn(2, 3, 10, 10))
    assert out.shape == (2, 8, 10, 10) and out.min() >= 0
    assert not hasattr(ConvBNAct(3, 8, 1, act=False), "act")
