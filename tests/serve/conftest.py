"""Tiny trained runs of every task (a few steps each, on embedded or generated data), shared
by the predictor, API and browser tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from striate.engine.loop import EngineConfig

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
MOODS = {"positive": ["glad", "happy", "great"], "negative": ["sad", "awful", "dull"]}
WORDS = {"red": "rot", "cat": "katze", "dog": "hund", "big": "gross", "runs": "rennt"}


def _engine(**kw) -> EngineConfig:
    settings = {
        "epochs": 1,
        "batch_size": 16,
        "max_steps": 3,
        "progress": False,
        "log_every": 1,
        "device": "cpu",
    }
    settings.update(kw)
    return EngineConfig(**settings)


def _image(root: Path) -> Path:
    from striate.apps import image_classification as ic

    config = ic.ImageTrainConfig(
        model="lenet5", data="digits", name="digits", runs_dir=str(root), engine=_engine()
    )
    return ic.train(config).run


def _text(root: Path) -> Path:
    from striate.apps import text_generation as tg

    corpus = root / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = tg.TextTrainConfig(
        data=str(corpus),
        hidden=32,
        layers=1,
        tbptt="20",
        sample_every=0,
        name="chars",
        runs_dir=str(root),
        engine=_engine(warmup_steps=0),
    )
    return tg.train(config).run


def _sentiment(root: Path) -> Path:
    from striate.apps import sentiment as sa

    rows = ["text,label"] + [
        f'"a {w} film, {w} {i}",{label}'
        for label, ws in MOODS.items()
        for w in ws
        for i in range(8)
    ]
    path = root / "moods.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    config = sa.SentimentTrainConfig(
        data=f"csv:{path}",
        hidden=16,
        embedding=16,
        min_freq=1,
        name="moods",
        runs_dir=str(root),
        engine=_engine(),
    )
    return sa.train(config).run


def _translation(root: Path) -> Path:
    from striate.apps import translation as mt

    rng = random.Random(0)
    lines = []
    for i in range(200):
        words = [rng.choice(list(WORDS)) for _ in range(rng.randint(2, 4))]
        lines.append(f"{' '.join(words)}\t{' '.join(WORDS[w] for w in words)}\ttoy #{i}")
    path = root / "toy.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = mt.TranslateTrainConfig(
        data=str(path),
        src="en",
        tgt="de",
        columns="en,de",
        min_freq=1,
        hidden=16,
        embedding=16,
        attention="luong",
        val_bleu_samples=0,
        name="toy-en-de",
        runs_dir=str(root),
        # 120 steps: enough to say words (the attention matrix needs rows), a few seconds
        engine=_engine(epochs=20, max_steps=120, lr=2e-2, warmup_steps=0),
    )
    return mt.train(config).run


def _caption(root: Path) -> Path:
    """A captioner of 32 images, each described five times as "a white line": 30 steps
    teach it to say so."""
    from serve_inputs import png_bytes

    from striate.apps import captioning as cap

    folder = root / "lines"
    folder.mkdir()
    tokens = []
    for i in range(32):
        (folder / f"{i}.png").write_bytes(png_bytes((24 + i, 24 + i), mode="RGB"))
        tokens += [f"{i}.png#{k}\ta white line" for k in range(5)]
    (folder / "captions.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    config = cap.CaptionTrainConfig(
        data=f"flickr8k:{folder / 'captions.txt'}",
        image_size=32,
        encoder="neocognitron",
        encoder_options={"widths": [8, 16], "kernel_size": 3},
        attention="additive",
        embedding=16,
        hidden=32,
        beam=1,
        val_fraction=0.1,
        name="shapes",
        runs_dir=str(root),
        engine=_engine(epochs=2, max_steps=30, lr=2e-2, warmup_steps=0, batch_size=8),
    )
    return cap.train(config).run


def _video(root: Path) -> Path:
    from striate.apps import video

    config = video.VideoTrainConfig(
        frames=6,
        image_size=16,
        clips=32,
        val_clips=16,
        test_clips=16,
        cell="gru",
        hidden=16,
        encoder_options={"width": 8},
        name="clips",
        runs_dir=str(root),
        engine=_engine(),
    )
    return video.train(config).run


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """kind → the run directory of a 3-step run of that task."""
    root = tmp_path_factory.mktemp("tiny-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        return {
            "image-classification": _image(root),
            "text-generation": _text(root),
            "sentiment": _sentiment(root),
            "translation": _translation(root),
            "image-captioning": _caption(root),
            "video-classification": _video(root),
        }
    finally:
        torch.set_num_threads(threads)
