"""The image-classification app's options: streaming folders, bf16, CSV metrics, channels."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from striate.apps import image_classification as ic
from striate.artifacts.metrics_log import read_metrics
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


@pytest.fixture(scope="module")
def stripes(tmp_path_factory):
    """A two-class folder a small CNN must learn: horizontal vs vertical stripes, in colour."""
    root = tmp_path_factory.mktemp("stripes")
    g = torch.Generator().manual_seed(0)
    for cls in ("horizontal", "vertical"):
        (root / cls).mkdir()
        for i in range(60):
            period = int(torch.randint(2, 5, (1,), generator=g))
            line = (torch.arange(20) // period % 2 * 200 + 20).to(torch.uint8)
            img = line.view(20, 1).expand(20, 20) if cls == "horizontal" else line.expand(20, 20)
            img = img + torch.randint(0, 30, (20, 20), generator=g, dtype=torch.uint8)
            rgb = torch.stack([img, img.flip(0), img // 2], -1).numpy()
            Image.fromarray(rgb).save(root / cls / f"{i}.png")
    return root


def _config(tmp_path, data, **kw):
    engine = {"epochs": 6, "batch_size": 16, "lr": 0.05, "progress": False, "log_every": 5}
    engine.update(kw.pop("engine", {}))
    return ic.ImageTrainConfig(
        model="lenet5", data=data, runs_dir=str(tmp_path), engine=EngineConfig(**engine), **kw
    )


def test_large_folders_stream_and_learn(stripes, tmp_path, monkeypatch):
    calls = []
    real = ic.StreamBatches

    def spy(*args, **kwargs):
        calls.append(kwargs.get("workers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ic, "StreamBatches", spy)
    config = _config(
        tmp_path, f"folder:{stripes}", memory_limit_gb=0.0, workers=2, name="stream", image_size=28
    )
    result = ic.train(config)
    assert calls == [2, 2]  # train and validation streamed through worker processes
    assert result.fit.final["accuracy"] >= 0.9
    top = ic.classify(result.run, [stripes / "vertical" / "0.png"], top_k=2)[0]
    assert top[0][0] == "vertical"


def test_bf16_csv_clipping_and_label_smoothing(stripes, tmp_path):
    config = _config(
        tmp_path,
        f"folder:{stripes}",
        name="bf16",
        label_smoothing=0.1,
        engine={
            "precision": "bf16",
            "clip_grad_norm": 1.0,
            "metrics_format": "csv",
            "optimizer": "adamw",
            "lr": 3e-3,
            "schedule": "cosine",
        },
    )
    result = ic.train(config)
    rows = read_metrics(result.run / "metrics.csv")
    train_losses = [r["loss"] for r in rows if r["phase"] == "train"]
    assert train_losses[-1] < train_losses[0]
    assert result.fit.final["accuracy"] >= 0.85


def test_images_with_the_wrong_channel_count_are_refused(stripes, tmp_path):
    result = ic.train(_config(tmp_path, f"folder:{stripes}", name="ch", engine={"epochs": 1}))
    with pytest.raises(StriateError, match="3 channel"):
        ic.classify(result.run, [torch.zeros(4, 20, 20, dtype=torch.uint8)])
    with pytest.raises(StriateError, match="3 channel"):
        ic.classify(result.run, [torch.zeros(1, 20, 20)])


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    config = ic.ImageTrainConfig(
        model="lenet5",
        data="digits",
        name="nan",
        runs_dir=str(tmp_path),
        engine=EngineConfig(epochs=1, lr=1e12, log_every=5, progress=False, schedule="constant"),
    )
    with pytest.raises(StriateError, match="loss became"):
        ic.train(config)
