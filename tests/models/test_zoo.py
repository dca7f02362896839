"""Every registered model: shapes, gradients, checkpoint round trips, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from striate.errors import StriateError
from striate.models import (
    _registry,
    count_parameters,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)
from striate.models.lenet import C3_TABLE

MODELS = list_models()


def _test_size(name: str) -> int:
    return max(get_model_spec(name).min_image_size, 32)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str) -> None:
    in_channels = 1 if name in ("lenet5", "resnet20", "neocognitron") else 3
    size = _test_size(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels, image_size=size)
    logits = model(torch.randn(2, in_channels, size, size))
    assert logits.shape == (2, 7)
    F.cross_entropy(logits, torch.tensor([0, 6])).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", MODELS)
def test_forward_at_min_image_size(name: str) -> None:
    size = get_model_spec(name).min_image_size
    model = create_model(name, num_classes=3, image_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 3)


@pytest.mark.parametrize("name", MODELS)
def test_safetensors_round_trip(name: str, tmp_path) -> None:
    size = get_model_spec(name).min_image_size
    torch.manual_seed(1)
    model = create_model(name, num_classes=5, image_size=size)
    model.train()(torch.randn(2, 3, size, size))  # move BN running statistics off their init
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    torch.manual_seed(2)
    fresh = create_model(name, num_classes=5, image_size=size)
    fresh.load_state_dict(load_file(str(path)))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), fresh.eval()(x))


@pytest.mark.parametrize("name", MODELS)
def test_features_then_head_is_forward(name: str) -> None:
    size = get_model_spec(name).min_image_size
    model = create_model(name, num_classes=4, image_size=size).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 2 and features.shape[0] == 2
        assert features.shape[1] == getattr(model, "num_features", features.shape[1])
        assert torch.equal(model.forward_head(features), model(x))


# (name, options, published count, relative tolerance)
PUBLISHED = [
    ("resnet20", {}, 0.27e6, 0.02),  # He et al. 2016, Table 6
    ("resnet32", {}, 0.46e6, 0.02),
    ("resnet44", {}, 0.66e6, 0.02),
    ("resnet56", {}, 0.85e6, 0.02),
    ("resnet110", {}, 1.7e6, 0.02),
    ("resnet18", {"num_classes": 1000, "image_size": 224}, 11_689_512, 0.0),
    ("resnet34", {"num_classes": 1000, "image_size": 224}, 21_797_672, 0.0),
    ("resnet50", {"num_classes": 1000, "image_size": 224}, 25_557_032, 0.0),
    # Krizhevsky et al. 2012: "60 million parameters" (two-GPU grouping); ungrouped: 62.4M
    ("alexnet", {"num_classes": 1000, "image_size": 224, "groups": 2}, 60e6, 0.02),
    ("alexnet", {"num_classes": 1000, "image_size": 224}, 62_378_344, 0.0),
    # LeNet-5 with full C3 and a linear output layer, MNIST: the well-known 61,706
    ("lenet5", {"in_channels": 1}, 61_706, 0.0),
]


@pytest.mark.parametrize(("name", "options", "published", "tolerance"), PUBLISHED)
def test_parameter_counts(name: str, options: dict, published: float, tolerance: float) -> None:
    with torch.device("meta"):  # counts shapes without allocating or initializing weights
        model = create_model(name, **options)
    assert math.isclose(count_parameters(model), published, rel_tol=tolerance, abs_tol=0.5)


def test_lenet5_classic_trainable_parameters_match_the_paper() -> None:
    """LeCun et al. 1998 §II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164."""
    model = create_model("lenet5_classic", in_channels=1)
    f = model.features

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    c3 = int(f.c3.mask.sum().item()) * 25 + f.c3.bias.numel()
    assert (count(f.c1), count(f.s2), c3, count(f.s4), count(f.c5), count(model.head.f6)) == (
        156, 12, 1516, 32, 48_120, 10_164,
    )  # fmt: skip
    assert sum(len(inputs) for inputs in C3_TABLE) == 60 and C3_TABLE[15] == tuple(range(6))
    x = torch.randn(2, 1, 32, 32)
    F.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    assert (f.c3.weight.grad * (1 - f.c3.mask)).abs().sum() == 0  # absent connections stay 0


@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic"])
@pytest.mark.parametrize(("size", "side"), [(28, 1), (30, 1), (32, 1), (40, 3)])
def test_lenet_sizes(name: str, size: int, side: int) -> None:
    """28-31 px are padded to C5 maps of 1x1; 40 px: C1 36, S2 18, C3 14, S4 7, C5 3."""
    model = create_model(name, in_channels=1, image_size=size)
    features = model.forward_features(torch.randn(2, 1, size, size))
    assert features.shape == (2, 120 * side * side)


def test_resnet_stem_choice() -> None:
    small = create_model("resnet18", image_size=32)
    large = create_model("resnet18", image_size=64)
    assert small.stem.conv.kernel_size == (3, 3)
    assert large.stem[0].conv.kernel_size == (7, 7)
    forced = create_model("resnet18", image_size=32, small_input=False)
    assert forced.stem[0].conv.kernel_size == (7, 7)
    assert forced(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_alexnet_small_stem_and_options() -> None:
    model = create_model("alexnet", image_size=32)
    assert model.features[0].kernel_size == (5, 5) and model.num_features == 256 * 3 * 3
    assert model.head[0].out_features == 1024
    model = create_model("alexnet", image_size=32, fc_width=256, lrn=False)
    assert model.head[0].out_features == 256
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    with pytest.raises(StriateError, match="too small"):
        create_model("alexnet", image_size=32, small_input=False)
    with pytest.raises(StriateError):
        create_model("alexnet", image_size=32, groups=3)


def test_zero_init_residual_is_the_default() -> None:
    for name in ("resnet20", "resnet18", "resnet50"):
        model = create_model(name, image_size=32)
        gammas = [block.last_bn.weight for stage in model.stages for block in stage]
        assert all(not g.any() for g in gammas), name


def test_user_registered_model_trains() -> None:
    name = "test_zoo_tiny_mlp"

    @register_model(name, image_size=12, min_image_size=8)
    def tiny(num_classes: int = 10, in_channels: int = 3, image_size: int = 12) -> nn.Module:
        """A one-layer linear classifier."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))

    try:
        assert name in list_models() and get_model_spec(name).description.startswith("A one")
        torch.manual_seed(0)
        model = create_model(name, num_classes=3, in_channels=1)
        x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = F.cross_entropy(model(x), y)
        opt.zero_grad()
        before.backward()
        opt.step()
        assert F.cross_entropy(model(x), y).item() < before.item()
    finally:
        _registry._MODELS.pop(name, None)
    assert name not in list_models()
