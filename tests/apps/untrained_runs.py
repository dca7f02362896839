"""Untrained runs written straight to a checkpoint, one per task, with metadata a test may
change: what the metadata checks and the non-finite-output checks are tried on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from striate.artifacts.checkpoint import save_checkpoint
from striate.data.vocab import CharVocab
from striate.data.words import SPECIALS, WordVocab
from striate.models import create_model
from striate.models.char_rnn import CharRNN
from striate.models.classifier import ImageClassifier
from striate.models.sentiment import SentimentRNN
from striate.models.video import VideoClassifier

DIGITS = [str(i) for i in range(10)]
LENET = {"name": "lenet5", "num_classes": 10, "in_channels": 1, "image_size": 32, "options": {}}


def image_run(root: Path, **changes: Any) -> Path:
    """An untrained 10-way LeNet-5 run (1 x 32 x 32), its metadata updated with ``changes``."""
    net = create_model("lenet5", 10, 1, 32)
    model = ImageClassifier(net, torch.zeros(1), torch.ones(1))
    meta = {
        "kind": "image-classification",
        "model": net.striate_config,
        "classes": DIGITS,
        "input": {"channels": 1, "image_size": 32},
        "normalization": {"mean": [0.0], "std": [1.0]},
        "data": "digits",
        **changes,
    }
    save_checkpoint(root / "img" / "checkpoints", 1, model.state_dict(), meta)
    return root / "img"


def sentiment_run(root: Path, **changes: Any) -> Path:
    """An untrained 2-way LSTM sentence classifier over a six-word vocabulary."""
    vocab = WordVocab([*SPECIALS, "good", "bad"])
    model = SentimentRNN(vocab_size=len(vocab), num_classes=2, embedding=4, hidden=4)
    meta = {
        "kind": "sentiment",
        "model": model.config,
        "vocab": vocab.to_json(),
        "classes": ["negative", "positive"],
        "tokenization": {"lowercase": True, "max_length": 50},
        **changes,
    }
    save_checkpoint(root / "sent" / "checkpoints", 1, model.state_dict(), meta)
    return root / "sent"


def text_run(root: Path, **changes: Any) -> Path:
    """An untrained character LSTM over the characters of "abc "."""
    vocab = CharVocab.from_text("abc ")
    model = CharRNN(vocab_size=len(vocab), hidden=8)
    meta = {"kind": "text-generation", "model": model.config, "vocab": vocab.to_json()}
    save_checkpoint(root / "txt" / "checkpoints", 1, model.state_dict(), {**meta, **changes})
    return root / "txt"


def video_run(root: Path, **changes: Any) -> Path:
    """An untrained 3-way CNN-LSTM frame classifier of 1 x 32 x 32 frames."""
    model = VideoClassifier(
        num_classes=3, in_channels=1, image_size=32, hidden=4, mean=[0.0], std=[1.0]
    )
    meta = {
        "kind": "video-classification",
        "model": model.config,
        "classes": ["a", "b", "c"],
        "input": {"channels": 1, "image_size": 32},
        "normalization": {"mean": [0.0], "std": [1.0]},
        **changes,
    }
    save_checkpoint(root / "vid" / "checkpoints", 1, model.state_dict(), meta)
    return root / "vid"
