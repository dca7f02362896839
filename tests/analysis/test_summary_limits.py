"""Sizes typed for a summary, a receptive-field picture or a generated video set are refused
before allocating when they could not fit, in one line naming the limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from striate.analysis.memory import activation_bytes, check_activations
from striate.apps import text_generation as tg
from striate.apps.analysis import receptive_field_picture
from striate.apps.model_summary import MAX_SUMMARY_LENGTH, model_summary
from striate.cli.main import main
from striate.data.sources.moving_digits import MovingDigits, generate_moving_digits
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


def test_activation_bytes_are_counted_on_meta_without_allocating():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
    # conv, relu and flatten each output 4x8x8 float32 values
    assert activation_bytes(net, (torch.zeros(1, 1, 8, 8),)) == 3 * 4 * 8 * 8 * 4
    huge = (torch.empty(1, 1, 100_000, 100_000, device="meta"),)  # 40 GB if it were real
    with pytest.raises(StriateError, match=r"over the limit of 4 GiB; choose a smaller size"):
        check_activations(net, huge, "a 100000x100000 image")


def test_an_image_side_whose_activations_do_not_fit_is_refused(tmp_path, capsys):
    with pytest.raises(StriateError, match=r"^a 4096x4096 image would take 4\d\.\d GiB"):
        model_summary("resnet50", [4096])
    with pytest.raises(StriateError, match=r"a 4096x4096 image .* over the limit of 4 GiB"):
        receptive_field_picture("resnet50", image_size=4096, out=tmp_path / "rf.png")
    assert main(["summary", "lenet5", "--input-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the limit" in err
    summary, _ = model_summary("lenet5", [64])  # a size that fits still runs
    assert summary.layers


def test_a_sequence_length_over_the_summary_limit_is_refused(tmp_path, capsys):
    engine = EngineConfig(epochs=1, batch_size=32, max_steps=1, progress=False)
    text = tg.TextTrainConfig(
        max_chars=20_000, cell="gru", layers=1, hidden=8, tbptt="16", sample_every=0,
        runs_dir=str(tmp_path), name="txt", engine=engine,
    )  # fmt: skip
    tg.train(text)
    capsys.readouterr()
    assert main(["summary", "txt", "--runs-dir", str(tmp_path), "--input-size", "100000000"]) == 2
    assert capsys.readouterr().err == (
        f"striate: error: input length 100000000 is over the limit {MAX_SUMMARY_LENGTH} "
        "for a summary\n"
    )
    limit = str(MAX_SUMMARY_LENGTH)
    assert main(["summary", "txt", "--runs-dir", str(tmp_path), "--input-size", limit]) == 0


def test_generated_clips_that_do_not_fit_are_refused_naming_the_count_that_does():
    glyphs = np.zeros((10, 16, 16), dtype=np.uint8)
    classes = np.arange(10)
    with pytest.raises(StriateError, match=r"^100,000,000 clips of 16 frames of 32x32 pixels"):
        generate_moving_digits(MovingDigits(), 100_000_000, 0, glyphs, classes)
    with pytest.raises(StriateError, match=r"over the limit of 4 GiB; ask for at most 209,715"):
        generate_moving_digits(MovingDigits(), 209_716, 0, glyphs, classes)
    data = generate_moving_digits(MovingDigits(frames=4), 3, 0, glyphs, classes)
    assert tuple(data.frames.shape) == (3, 4, 1, 32, 32)


def test_a_test_split_that_would_not_fit_is_refused_before_training(tmp_path, capsys):
    from striate.cli.main import main

    args = ["train", "video", "--runs-dir", str(tmp_path), "--no-progress"]
    assert main([*args, "--clips", "8", "--val-clips", "4", "--test-clips", "99999999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "99,999,999 clips" in err, err
    assert not any(tmp_path.iterdir())  # refused before any clip was made or run started
