"""Convolution arithmetic and the small layers the CNN zoo is built from.

The lecture (Barnes, "Convolutional and Recurrent Neural Networks") on downsampling:

* "Stride m indicates that instead of computing every pixel in the convolution, compute
  only every m-th pixel."
* Pooling: "Downsampling factor f could differ from neighborhood size N that is pooled
  over." Here ``stride`` is f and ``kernel`` is N; ``stride < kernel`` gives the
  *overlapping* pooling of AlexNet (Krizhevsky et al. 2012, §3.4: N = 3, f = 2).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from striate.errors import StriateError

__all__ = ["ConvBNAct", "conv_output_size", "pool2d"]


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Side length of the output of a convolution or pooling window sliding over ``size``.

    "Stride m indicates that instead of computing every pixel in the convolution, compute
    only every m-th pixel" (lecture): of the ``size + 2*padding - span + 1`` positions where
    a window of span ``dilation*(kernel-1) + 1`` fits, every ``stride``-th one is kept::

        out = floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1

    This is the rule ``nn.Conv2d``, ``nn.MaxPool2d`` and ``nn.AvgPool2d`` follow (with
    ``ceil_mode=False``). Raises :class:`StriateError` when the input is too small for one
    window, so a model can say "image too small" instead of failing deep inside a layer.
    """
    if kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise StriateError(
            f"bad window: kernel={kernel}, stride={stride}, padding={padding}, "
            f"dilation={dilation} (kernel, stride, dilation >= 1; padding >= 0)"
        )
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        raise StriateError(
            f"a {size}px input is too small for a window of {span}px with padding {padding}"
        )
    return out


def pool2d(kind: str, kernel: int, stride: int | None = None, padding: int = 0) -> nn.Module:
    """A parameter-free 2-D pooling layer: ``"max"`` or ``"avg"`` over ``kernel``-wide windows.

    ``stride`` is the downsampling factor f (default: ``kernel``, non-overlapping windows);
    "Downsampling factor f could differ from neighborhood size N that is pooled over"
    (lecture), so ``stride < kernel`` overlaps windows and ``stride > kernel`` skips pixels.

    Backpropagation, as the lecture puts it: "For max pooling, backpropagation just
    propagates error back to whichever neuron had the maximum value. For average pooling,
    backpropagation splits error equally among all the input neurons." (With overlapping
    windows an input that wins, or belongs to, several windows collects the sum of their
    errors.) Average pooling ignores zero padding when averaging (``count_include_pad=False``).

    Shapes: (N, C, H, W) -> (N, C, conv_output_size(H, kernel, stride, padding), ...).
    """
    stride = kernel if stride is None else stride
    if kernel < 1 or stride < 1 or not 0 <= padding <= kernel // 2:
        raise StriateError(
            f"bad pooling window: kernel={kernel}, stride={stride}, padding={padding} "
            "(kernel, stride >= 1; 0 <= padding <= kernel // 2)"
        )
    if kind == "max":
        return nn.MaxPool2d(kernel, stride, padding)
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, padding, count_include_pad=False)
    raise StriateError(f"unknown pooling kind {kind!r}; use 'max' or 'avg'")


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) -> batch normalization -> optional ReLU.

    The unit residual networks are made of (He et al. 2016, "Deep Residual Learning for
    Image Recognition"; batch normalization: Ioffe & Szegedy 2015). The bias is dropped
    because the BN shift (beta) plays its role. ``padding=None`` means ``kernel_size // 2``
    ("same" size at stride 1). Submodules are named ``conv``, ``bn`` and ``act``.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = conv_output_size(H, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
            ),
            bn=nn.BatchNorm2d(out_channels),
        )
        if act:
            layers["act"] = nn.ReLU(inplace=True)
        super().__init__(layers)
