"""Analytic receptive fields agree with the gradient-measured ones."""

from __future__ import annotations

import pytest
from torch import nn

from striate.analysis.receptive_field import (
    empirical_receptive_field,
    format_table,
    gradient_box,
    receptive_fields,
)
from striate.errors import StriateError
from striate.models import create_model


@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic"])
def test_lenet5_known_values(name: str) -> None:
    fields = receptive_fields(create_model(name, image_size=32), 32)
    sizes = {f.name.split(".")[1]: (f.size, f.jump, f.out_size) for f in fields}
    # C1 5x5; S2 adds one C1 step; C3 adds 4 S2 steps of 2; S4 one step of 2; C5 4 of 4
    assert sizes == {
        "c1": (5, 1, 28),
        "s2": (6, 2, 14),
        "c3": (14, 2, 10),
        "s4": (16, 4, 5),
        "c5": (32, 4, 1),
    }
    assert fields[-1].start == 16.0  # C5's single unit is centred on the 32 px image
    assert empirical_receptive_field(create_model(name, image_size=32), 32, "features.c5", 3) == 32


def _check_last_layer(model: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Analytic == empirical RF (and the field's position) for the model's last layer."""
    last = receptive_fields(model, image_size)[-1]
    centre = last.start + (last.out_size // 2) * last.jump
    top, left, bottom, right = gradient_box(model, image_size, last.name, in_channels)
    assert (top, left) == (centre - last.size / 2, centre - last.size / 2)
    assert (bottom + 1, right + 1) == (centre + last.size / 2, centre + last.size / 2)
    assert empirical_receptive_field(model, image_size, last.name, in_channels) == last.size
    return last.size


def test_lenet5_every_layer_matches() -> None:
    model = create_model("lenet5", image_size=64)  # large enough that no field is clipped
    for field in receptive_fields(model, 64):
        assert empirical_receptive_field(model, 64, field.name, 3) == field.size


def test_alexnet_small() -> None:
    model = create_model("alexnet", image_size=96, small_input=True, fc_width=16, lrn=True)
    assert _check_last_layer(model, 96) == 51


def test_cifar_resnet_follows_the_residual_branch() -> None:
    model = create_model("resnet20")
    fields = receptive_fields(model, 96)
    assert all(".shortcut" not in f.name for f in fields)
    assert len(fields) == 19  # the stem conv and 18 residual-branch convs
    assert _check_last_layer(model, 96) == 81  # 1 + 2 * (7 * 1 + 6 * 2 + 6 * 4)


def test_dilation_and_format_table() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3))
    fields = receptive_fields(model, 20)
    assert [f.size for f in fields] == [5, 6, 10]
    assert _check_last_layer(model, 20, in_channels=1) == 10
    table = format_table(fields)
    assert table.splitlines()[0].split()[:2] == ["layer", "type"]
    assert len(table.splitlines()) == 4


def test_unknown_layer() -> None:
    with pytest.raises(StriateError, match="no layer"):
        empirical_receptive_field(create_model("lenet5"), 32, "features.c9", 3)
