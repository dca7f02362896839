"""Tiny runs of every task for the export tests: one training step each (export needs
weights, not skill), on the real data beside the checkout where that is cheap, and with
the cells, attentions and directions varied so that every exported graph class is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from striate.engine.loop import EngineConfig


def _engine(**kw) -> EngineConfig:
    settings = {
        "epochs": 1,
        "batch_size": 8,
        "max_steps": 1,
        "progress": False,
        "log_every": 1,
        "device": "cpu",
        "warmup_steps": 0,
    }
    settings.update(kw)
    return EngineConfig(**settings)


def _image(root: Path, data: Path) -> Path:
    from striate.apps import image_classification as ic

    config = ic.ImageTrainConfig(
        model="lenet5", data="mnist", data_dir=str(data), limit=64, val_fraction=0.01, name="mnist",
        runs_dir=str(root), engine=_engine(),
    )  # fmt: skip
    return ic.train(config).run


def _text(root: Path, data: Path) -> Path:
    """The lecture's GRU (reset before the recurrent product), two layers, one-hot input."""
    from striate.apps import text_generation as tg

    corpus = root / "shakespeare.txt"
    corpus.write_text((data / "tinyshakespeare" / "input.txt").read_text()[:4000])
    config = tg.TextTrainConfig(
        data=str(corpus), cell="gru", hidden=16, layers=2, tbptt="20", sample_every=0,
        val_fraction=0.1, name="chars", runs_dir=str(root), engine=_engine(),
    )  # fmt: skip
    return tg.train(config).run


def _sentiment(root: Path, data: Path) -> Path:
    from striate.apps import sentiment as sa

    config = sa.SentimentTrainConfig(
        data="uci", data_dir=str(data), limit=200, hidden=8, embedding=8, min_freq=1,
        bidirectional=True, pooling="mean", name="uci", runs_dir=str(root), engine=_engine(),
    )  # fmt: skip
    return sa.train(config).run


def _translation(root: Path, data: Path, name: str, **options) -> Path:
    """Trained on the first 200 Multi30k training pairs (a few seconds; the whole corpus
    would take a minute to read)."""
    from striate.apps import translation as mt
    from striate.data.sources.parallel import load_parallel

    pairs = root / "multi30k-200.tsv"
    if not pairs.exists():
        test = load_parallel("multi30k", "val", "en", "de", data_dir=data, download=False)
        rows = [f"{s}\t{t}" for s, t in zip(test.source[:200], test.target[:200], strict=True)]
        pairs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = mt.TranslateTrainConfig(
        data=str(pairs), src="en", tgt="de", columns="en,de", min_freq=1, hidden=8,
        embedding=8, val_bleu_samples=2, name=name, runs_dir=str(root), engine=_engine(),
        **options,
    )  # fmt: skip
    return mt.train(config).run


def _caption(root: Path, name: str, **options) -> Path:
    from striate.apps import captioning as cap

    folder = root / f"{name}-images"
    folder.mkdir()
    lines = []
    for i in range(16):
        image = Image.new("RGB", (24 + i, 24 + i))
        ImageDraw.Draw(image).line([(4, 4), (20, 4 + i)], fill=(255, 255, 255), width=3)
        image.save(folder / f"{i}.png")
        lines += [f"{i}.png#{k}\ta white line" for k in range(2)]
    (folder / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = cap.CaptionTrainConfig(
        data=f"flickr8k:{folder / 'captions.txt'}", image_size=32, encoder="neocognitron",
        encoder_options={"widths": [8, 16], "kernel_size": 3}, embedding=8, hidden=16,
        beam=1, val_fraction=0.2, name=name, runs_dir=str(root), engine=_engine(),
        **options,
    )  # fmt: skip
    return cap.train(config).run


def _video(root: Path, data: Path) -> Path:
    """Moving MNIST digits through the lecture's GRU, both directions."""
    from striate.apps import video

    config = video.VideoTrainConfig(
        digits="mnist", data_dir=str(data), frames=5, image_size=16, clips=16, val_clips=8,
        test_clips=8, cell="gru", hidden=8, bidirectional=True,
        encoder_options={"width": 4, "stages": 2}, name="clips", runs_dir=str(root),
        engine=_engine(),
    )  # fmt: skip
    return video.train(config).run


@pytest.fixture(scope="session")
def export_runs(tmp_path_factory, shared_data) -> dict[str, Path]:
    """name → run directory: one run per task, translation and captioning in several
    variants (attention kinds and cells)."""
    root = tmp_path_factory.mktemp("export-runs")
    torch.manual_seed(0)
    return {
        "image": _image(root, shared_data),
        "text-gru": _text(root, shared_data),
        "sentiment-bilstm": _sentiment(root, shared_data),
        "translation-bahdanau-gru": _translation(root, shared_data, "bahdanau"),
        "translation-luong-lstm": _translation(
            root, shared_data, "luong", attention="luong", cell="lstm", reverse_source=True
        ),
        "translation-none-rnn": _translation(
            root, shared_data, "plain", attention="none", cell="rnn", bidirectional=False
        ),
        "caption-attention-lstm": _caption(root, "attend", attention="additive"),
        "caption-cudnn-gru": _caption(root, "tell", attention=None, cell="gru_cudnn"),
        "video-bigru": _video(root, shared_data),
    }
