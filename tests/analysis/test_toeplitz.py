"""The explicit (block) Toeplitz matrix of a convolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.analysis.toeplitz import conv_bias_vector, conv_matrix, conv_matrix_with_bias
from striate.errors import StriateError

CASES = [
    # in, out, kernel, stride, padding, dilation, (H, W)
    (1, 1, 3, 1, 0, 1, (6, 6)),
    (2, 3, 3, 1, 1, 1, (5, 7)),
    (3, 2, 5, 2, 2, 1, (9, 8)),
    (2, 4, 3, 2, 0, 2, (10, 11)),
    (1, 2, (3, 2), (1, 2), (1, 0), (2, 1), (7, 6)),
]


def _conv(c_in: int, c_out: int, k, s, p, d, bias: bool = True) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(c_in, c_out, k, s, p, d, bias=bias).double()


@pytest.mark.parametrize(("c_in", "c_out", "k", "s", "p", "d", "size"), CASES)
def test_matrix_times_input_is_the_convolution(c_in, c_out, k, s, p, d, size) -> None:
    conv = _conv(c_in, c_out, k, s, p, d)
    x = torch.randn(c_in, *size, dtype=torch.float64)
    y = conv(x.unsqueeze(0))[0]
    t = conv_matrix(conv, size)
    assert t.shape == (y.numel(), x.numel())
    torch.testing.assert_close(
        t @ x.flatten(), (y - conv.bias.view(-1, 1, 1)).flatten(), rtol=0, atol=1e-12
    )
    t2, b = conv_matrix_with_bias(conv, size)
    torch.testing.assert_close(t2 @ x.flatten() + b, y.flatten(), rtol=0, atol=1e-12)


def test_no_bias_and_padding_modes() -> None:
    conv = nn.Conv2d(2, 2, 3, padding=1, bias=False, padding_mode="circular").double()
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv_matrix(conv, 5) @ x.flatten(), conv(x[None]).flatten())
    assert not conv_bias_vector(conv, 5).any()


def test_blocks_are_doubly_toeplitz_at_stride_one() -> None:
    c_in, c_out, k, p, h, w = 2, 3, 3, 1, 6, 5
    conv = _conv(c_in, c_out, k, 1, p, 1)
    blocks = conv_matrix(conv, (h, w)).view(c_out, h, w, c_in, h, w)
    for o in range(c_out):
        for c in range(c_in):
            b = blocks[o, :, :, c]  # (y, x, u, v)
            # constant along the diagonals: shifting output and input together changes nothing
            assert torch.equal(b[1:, :, 1:, :], b[:-1, :, :-1, :])
            assert torch.equal(b[:, 1:, :, 1:], b[:, :-1, :, :-1])
            # and the constants are the kernel taps: b[y, x, y + i - p, x + j - p] = w[o, c, i, j]
            for i in range(k):
                for j in range(k):
                    assert b[2, 2, 2 + i - p, 2 + j - p] == conv.weight[o, c, i, j]
            # outside the kernel's reach the block is zero
            assert b[0, 0, k:, :].abs().sum() == 0 and b[0, 0, :, k:].abs().sum() == 0


def test_stride_keeps_every_other_row() -> None:
    conv = _conv(1, 1, 3, 2, 1, 1)
    dense = nn.Conv2d(1, 1, 3, 1, 1).double()
    dense.load_state_dict(conv.state_dict())
    strided = conv_matrix(conv, 6).view(3, 3, 36)
    torch.testing.assert_close(strided, conv_matrix(dense, 6).view(6, 6, 36)[::2, ::2])


def test_grouped_convolution_is_rejected() -> None:
    with pytest.raises(StriateError, match="groups"):
        conv_matrix(nn.Conv2d(4, 4, 3, groups=2), (5, 5))
    with pytest.raises(StriateError):
        conv_matrix(nn.Linear(3, 3), (5, 5))  # type: ignore[arg-type]
