"""Batched random augmentation (striate.data.transforms.augment) and channel statistics."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from striate.data.transforms.augment import (
    DEFAULTS,
    Augment,
    build_augmentation,
    parse_augment,
)
from striate.data.transforms.functional import channel_mean_std
from striate.errors import StriateError

NAMES = list(DEFAULTS)
RGB_ONLY = {"saturation", "hue"}


def _images(batch: int = 8, channels: int = 3, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Smooth, asymmetric test images in [0, 1] (a gradient plus a bright off-centre blob)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = 0.15 + 0.5 * xs * ys + 0.3 * torch.exp(-((xs - 0.3) ** 2 + (ys - 0.25) ** 2) / 0.02)
    colour = 0.6 + 0.4 * torch.rand(batch, channels, 1, 1, generator=g)
    return (base * colour).clamp(0, 1)


def _same_image_batch(batch: int = 16, channels: int = 3) -> torch.Tensor:
    return _images(1, channels).expand(batch, -1, -1, -1).contiguous()


# ---------------------------------------------------------------- parsing


def test_parse_names_and_strengths():
    assert parse_augment("rotate=15,shift=0.1,flip,crop=0.6,color=0.3") == [
        ("rotate", 15.0),
        ("shift", 0.1),
        ("flip", None),
        ("crop", 0.6),
        ("color", 0.3),
    ]
    assert parse_augment(" Rotate , SHIFT=0.2 ") == [("rotate", None), ("shift", 0.2)]
    assert parse_augment(["rotate", "flip,vflip"]) == [
        ("rotate", None),
        ("flip", None),
        ("vflip", None),
    ]


@pytest.mark.parametrize("spec", [None, "", "none", "NONE", " , ", []])
def test_parse_empty(spec):
    assert parse_augment(spec) == []
    assert build_augmentation(spec, channels=3) is None


@pytest.mark.parametrize(
    "spec",
    [
        "twirl",
        "rotate,twirl=3",
        "rotate=-1",
        "rotate=181",
        "shift=1",
        "shift=-0.1",
        "crop=0",
        "crop=1.5",
        "color=-0.3",
        "hue=0.6",
        "flip=2",
        "rotate=abc",
        "rotate=nan",
        "rotate,rotate=10",
        "none,rotate",
    ],
)
def test_parse_errors(spec):
    with pytest.raises(StriateError) as info:
        parse_augment(spec)
    message = str(info.value)
    assert "\n" not in message
    if "twirl" in spec:
        assert all(name in message for name in NAMES)


def test_bad_spec_in_constructor_is_striate_error():
    with pytest.raises(StriateError):
        Augment("rotate=500", channels=3)
    with pytest.raises(StriateError):
        Augment([("spin", 1.0)], channels=3)


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_each_name_changes_train_and_is_identity_in_eval(name, channels):
    aug = Augment(name, channels=channels)
    x = _images(16, channels)
    torch.manual_seed(1)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0.0 and y.max() <= 1.0
    if channels == 1 and name in RGB_ONLY:
        assert torch.equal(y, x)  # saturation/hue are skipped for grey images
        assert "skipped" in aug.describe()
    else:
        assert not torch.allclose(y, x, atol=1e-4)
    aug.eval()
    assert aug(x) is x


@pytest.mark.parametrize("name", ["rotate", "shift", "crop", "color"])
def test_each_sample_gets_its_own_parameters(name):
    x = _same_image_batch(16)
    torch.manual_seed(2)
    y = Augment(name, channels=3)(x).flatten(1)
    distinct = {tuple(row.tolist()) for row in (y * 1e4).round()}
    assert len(distinct) == 16


def test_flip_flips_about_half():
    x = _same_image_batch(64)
    torch.manual_seed(3)
    y = Augment("flip", channels=3)(x)
    flipped = torch.tensor([torch.equal(a, x[0].flip(-1)) for a in y])
    kept = torch.tensor([torch.equal(a, x[0]) for a in y])
    assert bool((flipped | kept).all())
    assert 16 <= int(flipped.sum()) <= 48


def test_vflip_flips_rows():
    x = _same_image_batch(64)
    torch.manual_seed(3)
    y = Augment("vflip", channels=3)(x)
    flipped = sum(torch.equal(a, x[0].flip(-2)) for a in y)
    assert 16 <= flipped <= 48


def test_rotation_and_shift_pad_with_zeros():
    x = torch.ones(32, 1, 16, 16)
    torch.manual_seed(0)
    corners = Augment("rotate=45", channels=1)(x)[..., 0, 0]
    assert float(corners.min()) == 0.0  # uncovered corners are black, not reflected content
    assert float(corners.mean()) < 0.5
    torch.manual_seed(0)
    shifted = Augment("shift=0.3", channels=1)(x)
    black_band = shifted.amin(dim=(1, 2, 3)) == 0.0  # shifted-in pixels are black
    assert int(black_band.sum()) >= 28  # (all but sub-pixel shifts)


def test_seed_reproduces_exactly():
    aug = Augment("rotate,shift,flip,crop=0.6,color", channels=3)
    x = _images(8)
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    torch.manual_seed(124)
    c = aug(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("channels", [1, 3])
def test_full_pipeline_shapes_range_dtypes(channels):
    aug = build_augmentation("rotate=15,shift=0.1,flip,crop=0.6,color=0.3", channels)
    assert aug is not None
    for size in (28, 32):
        x = _images(5, channels, size)
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            y = aug(x.to(dtype))
            assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
            assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    single = aug(_images(1, channels)[0])
    assert single.shape == (channels, 24, 24)


def test_bfloat16_matches_float32_computation():
    aug = Augment("rotate,color", channels=3)
    x = _images(4).bfloat16()
    torch.manual_seed(5)
    y = aug(x)
    torch.manual_seed(5)
    ref = aug(x.float()).bfloat16()
    assert torch.equal(y, ref)


def test_does_not_modify_input_and_checks_channels():
    aug = Augment("flip=0", channels=3)
    x = _images(4)
    before = x.clone()
    aug(x)
    assert torch.equal(x, before)
    with pytest.raises(StriateError):
        aug(_images(4, channels=1))
    with pytest.raises(StriateError):
        aug((x * 255).to(torch.uint8))


def test_order_is_canonical_and_describe():
    a = Augment("color,rotate,flip", channels=3)
    b = Augment("flip,rotate,color", channels=3)
    assert a.describe() == b.describe()
    assert a.describe().startswith("flip")
    x = _images(4)
    torch.manual_seed(9)
    ya = a(x)
    torch.manual_seed(9)
    assert torch.equal(ya, b(x))
    assert "brightness/contrast only" in Augment("color", channels=1).describe()


# ---------------------------------------------------------------- channel statistics


def test_channel_mean_std_matches_float64_reference():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (103, 3, 8, 8), dtype=torch.uint8, generator=g)
    images[:, 1] //= 4  # make the channels differ
    mean, std = channel_mean_std(images, batch_size=10)
    ref = images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    assert mean.shape == std.shape == (3,)
    torch.testing.assert_close(mean.double(), ref.mean(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(std.double(), ref.std(1, unbiased=False), rtol=0, atol=1e-6)
    # uint8 images are counted by value (a histogram); floats are summed: the same numbers
    as_float = channel_mean_std(images.float().div(255))
    torch.testing.assert_close((mean, std), as_float, rtol=0, atol=1e-6)


def test_channel_mean_std_float_input_and_constant():
    images = torch.full((5, 1, 4, 4), 0.25)
    mean, std = channel_mean_std(images)
    assert mean.tolist() == [0.25]
    assert std.tolist() == [0.0]
    with pytest.raises(ValueError):
        channel_mean_std(torch.zeros(0, 3, 4, 4))


def test_kornia_is_imported_only_when_an_augmentation_is_built():
    """A run without --augment never pays kornia's import (as long as the rest of striate's)."""
    code = (
        "import sys; import striate.apps.image_classification; "
        "from striate.data.transforms.augment import build_augmentation as b; "
        "assert b('', 1) is None and 'kornia' not in sys.modules, 'imported too early'; "
        "b('flip', 1); assert 'kornia' in sys.modules, 'not imported when needed'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
