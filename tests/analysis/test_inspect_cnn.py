"""The numbers behind the CNN pictures: filters, feature maps, saliency, Grad-CAM, errors,
receptive-field maps and the Toeplitz view."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.analysis.field_view import centre_unit_box, choose_field_layer, unit_gradient
from striate.analysis.inspect_cnn import (
    default_cam_layer,
    feature_maps,
    filter_tiles,
    first_layer_filters,
    grad_cam,
    saliency_map,
    worst_errors,
)
from striate.analysis.receptive_field import receptive_fields
from striate.analysis.toeplitz import conv_matrix
from striate.analysis.toeplitz_view import toeplitz_view
from striate.errors import StriateError
from striate.models import create_model
from striate.models.classifier import ImageClassifier


@pytest.fixture(scope="module")
def lenet() -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(create_model("lenet5", 10, 1, 32), [0.4], [0.3]).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1))


def test_filters_are_the_first_convolution(lenet):
    weights = first_layer_filters(lenet)
    assert torch.equal(weights, lenet.net.features.c1.weight.detach())
    tiles = filter_tiles(weights)
    assert tiles.shape == (6, 1, 5, 5) and tiles.min() >= 0 and tiles.max() <= 1
    peak = weights.abs().flatten(1).amax(1)
    assert torch.allclose(tiles.flatten(1).sub(0.5).abs().amax(1), torch.full((6,), 0.5))
    assert torch.allclose((tiles - 0.5) * 2 * peak.view(-1, 1, 1, 1), weights, atol=1e-6)
    assert filter_tiles(torch.randn(4, 2, 3, 3)).shape == (8, 1, 3, 3)  # one tile per pair


def test_feature_maps_equal_a_manual_forward(lenet, image):
    f = lenet.net.features
    with torch.no_grad():
        x = lenet.standardize(image[None])
        c1 = f.c1(x)
        c3 = f.c3(f.s2(F.relu(c1)))
    assert torch.allclose(feature_maps(lenet, image, "features.c1"), c1)
    assert torch.allclose(feature_maps(lenet, image, "net.features.c3"), c3)  # prefix accepted
    assert torch.allclose(feature_maps(lenet, image, "features.act3"), F.relu(c3))
    assert (feature_maps(lenet, image, "features.c3") < 0).any()  # not the in-place ReLU's
    with pytest.raises(StriateError, match=r"no layer 'features\.c4'.*features\.c3"):
        feature_maps(lenet, image, "features.c4")
    with pytest.raises(StriateError, match="channel"):
        feature_maps(lenet, torch.rand(3, 32, 32), "features.c1")


def test_saliency_is_the_input_gradient_of_the_class_score(lenet, image):
    x = image[None].clone().requires_grad_(True)
    lenet(x)[0, 3].backward()
    sal, grad, cls = saliency_map(lenet, image, 3)
    assert cls == 3
    assert torch.allclose(grad, x.grad[0])
    assert torch.allclose(sal, x.grad[0].abs().amax(0))
    other, _, _ = saliency_map(lenet, image, 7)
    assert not torch.allclose(sal, other)
    predicted = int(lenet(image[None]).argmax())
    assert saliency_map(lenet, image)[2] == predicted


def test_grad_cam_follows_its_equation(lenet, image):
    assert default_cam_layer(lenet, image) == "features.s4"  # C5's maps are 1x1 at 32 px
    cam, coarse, cls, layer = grad_cam(lenet, image, 4)
    assert (cls, layer) == (4, "features.s4")
    assert cam.shape == (32, 32) and coarse.shape == (5, 5)
    assert cam.min() >= 0 and coarse.min() >= 0
    # by hand: A = S4's maps, alpha_k = mean_ij dS_c/dA^k_ij, L = ReLU(sum_k alpha_k A^k)
    f = lenet.net.features
    with torch.no_grad():
        maps = f.s4(F.relu(f.c3(f.s2(F.relu(f.c1(lenet.standardize(image[None])))))))
    maps.requires_grad_(True)
    score = lenet.net.head(F.relu(f.c5(maps)).flatten(1))[0, 4]
    (grads,) = torch.autograd.grad(score, maps)
    expected = F.relu((grads[0].mean((1, 2)).view(-1, 1, 1) * maps[0]).sum(0))
    assert torch.allclose(coarse, expected.detach(), atol=1e-6)
    other, *_ = grad_cam(lenet, image, 9)
    assert not torch.allclose(cam, other)
    c3_cam, c3_coarse, _, _ = grad_cam(lenet, image, 4, layer="features.c3")
    assert c3_coarse.shape == (10, 10) and c3_cam.shape == (32, 32)


def _bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """16x16 noise with one 7x7 bar pattern in a random quadrant; the class is its
    orientation (0 horizontal, 1 vertical). Returns images, labels and the quadrants."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 16, 16, generator=g) * 0.3
    labels = torch.randint(0, 2, (n,), generator=g)
    quadrants = torch.randint(0, 4, (n,), generator=g)
    stripes = (torch.arange(7) % 2 == 0).float().view(7, 1).expand(7, 7)
    for i in range(n):
        top, left = 8 * (quadrants[i] // 2) + 1, 8 * (quadrants[i] % 2) + 1
        patch = stripes if labels[i] == 0 else stripes.T
        images[i, 0, top : top + 7, left : left + 7] = 0.2 + 0.8 * patch
    return images, labels, quadrants


def test_grad_cam_points_at_the_evidence():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 2),
    )
    images, labels, _ = _bars(256, 0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(40):
        batch = slice(32 * (step % 8), 32 * (step % 8 + 1))
        loss = F.cross_entropy(net(images[batch]), labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    test, test_labels, quadrants = _bars(24, 1)
    assert (net(test).argmax(1) == test_labels).float().mean() >= 0.9
    hits, shares = 0, []
    for image, quadrant in zip(test, quadrants.tolist(), strict=True):
        cam, _, _, layer = grad_cam(net, image)
        assert layer == "6"  # the last ReLU: the last maps before global pooling
        mass = cam.view(2, 8, 2, 8).sum((1, 3)).flatten()  # per quadrant, row-major
        hits += int(mass.argmax()) == quadrant
        shares.append(float(mass[quadrant] / mass.sum()))
    assert hits >= 0.9 * len(test)  # the quadrant with the bars gets the most mass
    assert sum(shares) / len(shares) > 0.4, shares  # chance: a quarter


def test_worst_errors_are_wrong_and_most_confident_first(lenet):
    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (200, 1, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (200,), generator=g)
    cases = worst_errors(lenet, images, labels, count=12)
    with torch.no_grad():
        probs = lenet(images.float() / 255).softmax(-1)
    confidence, predicted = probs.max(-1)
    wrong = predicted != labels
    assert len(cases) == 12
    assert all(int(predicted[c.index]) == c.predicted != c.label == labels[c.index] for c in cases)
    shown = [c.confidence for c in cases]
    assert shown == sorted(shown, reverse=True)
    assert min(shown) >= float(confidence[wrong].sort(descending=True).values[11]) - 1e-6
    for c in cases:
        assert [k for k, _ in c.top] == probs[c.index].topk(5).indices.tolist()
        assert torch.allclose(torch.tensor([p for _, p in c.top]), probs[c.index].topk(5).values)
    assert worst_errors(lenet, images[:5], predicted[:5]) == []  # nothing wrong, nothing shown


def test_toeplitz_view_shows_exactly_the_non_zeros():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    view = toeplitz_view(conv, (7, 6))
    matrix = conv_matrix(conv, (7, 6))
    assert view.shape == tuple(matrix.shape) == (3 * 4 * 3, 2 * 7 * 6)
    assert view.block == (12, 42) and view.blocks == (3, 2) and view.factor == (1, 1)
    assert torch.equal(view.image != 0, matrix != 0)
    assert view.nonzeros == int((matrix != 0).sum())
    small = toeplitz_view(conv, (7, 6), max_side=10)  # each cell stands for a block of T
    assert small.factor == (4, 9)
    padded = F.pad(matrix != 0, (0, 90 - 84)).float()  # 36 rows: 9 cells of 4
    blocks = F.max_pool2d(padded[None, None], small.factor)[0, 0] > 0
    assert torch.equal(small.image != 0, blocks)
    with pytest.raises(StriateError, match="the matrix would be"):
        toeplitz_view(nn.Conv2d(3, 64, 3), (224, 224))


def test_field_maps_lie_in_the_analytic_box(lenet):
    fields = receptive_fields(lenet.net, 32)
    field = choose_field_layer(fields, None, 32)
    assert field.name == "features.s4" and field.size == 16
    top, left, bottom, right = centre_unit_box(field)
    assert (top, left, bottom, right) == (8, 8, 24, 24)
    image = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(3))
    support = unit_gradient(lenet, image, field.name, positive=True)
    rows, cols = (support > 0).nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) == (
        top,
        bottom,
        left,
        right,
    )
    effective = unit_gradient(lenet, image, field.name)
    assert effective.sum() > 0
    outside = effective.clone()
    outside[int(top) : int(bottom), int(left) : int(right)] = 0
    assert outside.abs().max() == 0
    with pytest.raises(StriateError, match="choose one of"):
        choose_field_layer(fields, "head.f6", 32)


def test_grad_cam_layer_of_a_resnet_is_its_last_block():
    torch.manual_seed(0)
    net = ImageClassifier(create_model("resnet20", 10, 3, 32), [0.5] * 3, [0.25] * 3).eval()
    image = torch.rand(3, 32, 32)
    assert default_cam_layer(net, image) == "stages.2.2.act"  # innermost name, not "stages"
    cam, coarse, _, _ = grad_cam(net, image, 1)
    assert coarse.shape == (8, 8) and cam.shape == (32, 32) and cam.min() >= 0
