"""Fine-tuning: the head learns alone first, the body then learns at a lower rate with its
pretrained batch-norm statistics kept -- and on a few hundred images of a new data set it
beats training from scratch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from striate.apps import image_classification as ic
from striate.data.batching import TensorBatches
from striate.engine.loop import EngineConfig, fit
from striate.engine.steps import ClassificationStep
from striate.errors import StriateError
from striate.weights.finetune import FineTuneClassifier


def _tiny_bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip


def test_head_first_then_a_slower_body_with_pretrained_bn_statistics():
    net = _tiny_bn_net()
    net[1].running_mean.fill_(0.3)  # "pretrained" statistics
    net[1].running_var.fill_(2.0)
    model = FineTuneClassifier(net, [0.5], [0.25], head="5", freeze_steps=4, body_lr_factor=0.1)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 3, (64,))
    batches = TensorBatches(images, labels, 16, seed=0)
    body0 = net[0].weight.detach().clone()
    head0 = net[5].weight.detach().clone()

    def run(steps: int) -> None:
        config = EngineConfig(
            epochs=2, max_steps=steps, lr=0.1, progress=False, schedule="constant"
        )
        fit(model, ClassificationStep(None), batches, None, config)

    run(4)  # the head-only phase: 4 steps
    assert torch.equal(net[0].weight, body0), "the body moved while frozen"
    assert not torch.equal(net[5].weight, head0), "the head did not learn"
    run(8)  # a fresh optimizer from step 0 again: same 4 frozen steps, then 4 with the body
    assert not torch.equal(net[0].weight, body0), "the body did not learn after unfreezing"
    assert net[1].running_mean.eq(0.3).all() and net[1].running_var.eq(2.0).all()
    model.train()
    assert model.training and net[5].training and not net[1].training


def test_discriminative_learning_rates_in_the_optimizer():
    from striate.engine.optim import build_optimizer, set_lr

    model = FineTuneClassifier(_tiny_bn_net(), [0.5], [0.25], "5", 3, 0.25)
    optimizer = build_optimizer(model, "sgd", lr=0.2)
    set_lr(optimizer, 0.2, 1.0, step=0)
    head = [g["lr"] for g in optimizer.param_groups if g["lr_scale"] == 1.0]
    body = [g["lr"] for g in optimizer.param_groups if g["lr_scale"] == 0.25]
    assert head == [0.2, 0.2] and body == [0.0, 0.0]
    set_lr(optimizer, 0.2, 1.0, step=3)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.2, 0.2, 0.05, 0.05])


def test_fine_tune_needs_weights_and_a_sensible_freeze():
    with pytest.raises(StriateError, match="needs pretrained weights"):
        ic.ImageTrainConfig(fine_tune=True)
    with pytest.raises(StriateError, match="freeze epochs"):
        ic.ImageTrainConfig(weights="x.safetensors", fine_tune=True, freeze_epochs=3,
                            engine=EngineConfig(epochs=3))  # fmt: skip


@pytest.mark.slow
def test_fine_tuning_from_mnist_beats_scratch_on_200_digits(shared_data, tmp_path):
    """Pretrain LeNet-5 on 2,000 real MNIST digits; then 200 of scikit-learn's 8x8 digits (a
    different data set: other writers, other scanner, 8x8 upsampled), written as a folder,
    with 200 more held out. Same images, epochs and learning rate: fine-tuning from the
    MNIST run must beat training from scratch by at least 10 points of accuracy (measured:
    0.78 against 0.58)."""
    runs = tmp_path / "runs"
    pre = EngineConfig(epochs=2, batch_size=64, lr=0.05, progress=False)
    ic.train(ic.ImageTrainConfig(
        model="lenet5", data="mnist", data_dir=str(shared_data), limit=2000, val_fraction=0.02,
        runs_dir=str(runs), name="mnist", engine=pre,
    ))  # fmt: skip
    digits = load_digits()
    folder = tmp_path / "digits"
    for c in range(10):
        (folder / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(digits.target == c)[:40]:
            pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / str(c) / f"{i}.png")

    def train(**kw) -> float:
        engine = EngineConfig(epochs=5, batch_size=32, lr=0.05, progress=False)
        config = ic.ImageTrainConfig(
            model="lenet5", data=f"folder:{folder}", image_size=28, val_fraction=0.5,
            runs_dir=str(runs), engine=engine, **kw,
        )  # fmt: skip
        return ic.train(config).fit.final["accuracy"]

    tuned = train(weights=str(runs / "mnist"), fine_tune=True, freeze_epochs=1, body_lr_factor=0.3)
    scratch = train()
    assert tuned >= scratch + 0.10, (tuned, scratch)
