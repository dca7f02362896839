"""Residual blocks start as the identity: "Network with all zero weights gives identity
function" (lecture), via zero-initialized last BN scales."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from striate.errors import StriateError
from striate.models import create_model
from striate.models.resnet import ResNet
from striate.nn.residual import BasicBlock, Bottleneck, ZeroPadShortcut, make_shortcut

BLOCKS = [(BasicBlock, 16, 16), (Bottleneck, 64, 16)]  # (block, in_channels, planes): same shape


@pytest.mark.parametrize(("block", "in_channels", "planes"), BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("train", [True, False])
def test_block_is_identity_at_init(block, in_channels, planes, shortcut, train) -> None:
    torch.manual_seed(0)
    module = block(in_channels, planes, 1, shortcut).train(train)
    x = torch.rand(2, in_channels, 8, 8)  # non-negative, like the ReLU output feeding a block
    with torch.no_grad():
        assert torch.equal(module(x), x)


@pytest.mark.parametrize(("block", "in_channels", "planes"), BLOCKS)
def test_block_is_not_identity_without_zero_init(block, in_channels, planes) -> None:
    torch.manual_seed(0)
    module = block(in_channels, planes, 1, "B", zero_init_residual=False)
    x = torch.rand(2, in_channels, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(module(x), x)


def test_downsampling_block_with_shortcut_a_starts_as_its_shortcut() -> None:
    module = BasicBlock(16, 32, stride=2, shortcut="A")
    assert sum(p.numel() for p in module.shortcut.parameters()) == 0
    x = torch.rand(2, 16, 9, 9)
    with torch.no_grad():
        y = module(x)
    assert y.shape == (2, 32, 5, 5)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_shortcut_b_projects_only_when_shape_changes() -> None:
    assert isinstance(make_shortcut("B", 8, 8, 1), torch.nn.Identity)
    proj = make_shortcut("B", 8, 16, 2)
    assert proj.conv.kernel_size == (1, 1) and proj.conv.stride == (2, 2)
    assert Bottleneck(64, 64, 2).shortcut(torch.randn(1, 64, 8, 8)).shape == (1, 256, 4, 4)
    assert isinstance(make_shortcut("a", 8, 16, 2), ZeroPadShortcut)
    with pytest.raises(StriateError):
        make_shortcut("C", 8, 16, 2)


def test_gradient_reaches_zeroed_gamma() -> None:
    module = BasicBlock(4, 4)
    x = torch.rand(2, 4, 6, 6)
    (module(x) * torch.randn(2, 4, 6, 6)).sum().backward()
    assert module.last_bn.weight.grad.abs().sum() > 0  # so F can leave zero during training


def test_resnet20_at_init_is_its_stem_plus_identities() -> None:
    """With shortcut A every block is the identity or a subsample + zero-pad at init, so
    the 19 layers after the stem add nothing: the features are the stem's output, taken at
    every 4th pixel (two stride-2 stages), averaged, and zero in the 48 padded channels."""
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    assert isinstance(model, ResNet)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        stem = model.stem(x)[:, :, ::4, ::4]
    assert features.shape == (2, 64)
    assert torch.allclose(features[:, :16], F.adaptive_avg_pool2d(stem, 1).flatten(1))
    assert not features[:, 16:].any()
