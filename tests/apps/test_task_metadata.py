"""A checkpoint whose metadata holds the wrong thing under a key it has (empty or
mismatched class names, a model that is not an object, a std that is not numbers, a
vocabulary of the wrong size) is refused where it is loaded, in one line naming the file and
the field, by every command that reads it; not an IndexError or TypeError later.

The runs are untrained models written straight to a checkpoint: no training needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from untrained_runs import LENET, image_run, sentiment_run, text_run, video_run

import striate
from striate.cli.main import main
from striate.data.words import SPECIALS
from striate.errors import StriateError


def _one_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "corrupt checkpoint metadata" in err and "meta.json" in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.new("L", (32, 32)).save(path)
    return path


def test_the_untouched_runs_predict(tmp_path, png):
    """The helpers' runs are sound: what the other tests damage is one field alone."""
    assert len(striate.load(image_run(tmp_path), "cpu").predict(str(png))[0]["top"]) == 5
    assert striate.load(sentiment_run(tmp_path), "cpu").predict("good")[0]["label"]
    assert len(striate.load(text_run(tmp_path), "cpu").predict("a", length=3)["text"]) == 3
    clip = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    assert len(striate.load(video_run(tmp_path), "cpu").predict(clip)["frames"]) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": []}, "classes is empty"),
        ({"classes": ["a", "b", "c"]}, "classes holds 3 names for a 10-way model"),
        ({"classes": None}, "classes is not a list of names (it is null)"),
        ({"classes": [1] * 10}, "not a name"),
        ({"classes": ["a"] * 10}, "names a class twice"),
        ({"model": None}, "model is not an object (it is null)"),
        ({"model": {**LENET, "num_classes": "x"}}, "model does not describe a model"),
        ({"model": {**LENET, "options": {"depth": 3}}}, "model does not describe a model"),
        ({"normalization": {"mean": [0.0], "std": "x"}}, "normalization std is not a list of"),
        ({"normalization": {"mean": [0.0], "std": [0.0]}}, "std holds a value that is not pos"),
        ({"normalization": {"mean": [0.0, 1.0], "std": [1.0]}}, "2 means but 1 stds"),
        ({"normalization": {"mean": [float("nan")], "std": [1.0]}}, "mean is not a list of"),
    ],
)
def test_wrong_image_metadata_is_one_line_for_every_command(
    tmp_path, png, capsys, changes, message
):
    run = image_run(tmp_path, **changes)
    with pytest.raises(StriateError, match=r"corrupt checkpoint metadata .*meta\.json"):
        striate.load(run, "cpu")
    for argv in (["classify", str(run), str(png)], ["summary", str(run)]):
        assert main(argv) == 2
        _one_line(capsys, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": []}, "classes is empty"),
        ({"classes": None}, "classes is not a list of names (it is null)"),
        ({"classes": "x"}, "classes is not a list of names (it is str)"),
        ({"classes": ["only"]}, "classes holds 1 name for a 2-way model"),
        ({"vocab": {"kind": "word", "tokens": list(SPECIALS)}}, "vocab holds 4 tokens for a"),
        ({"vocab": {"kind": "word", "tokens": "x"}}, "vocab is not a vocabulary"),
        ({"model": ["x"]}, "model is not an object (it is list)"),
    ],
)
def test_wrong_sentiment_metadata_is_one_line(tmp_path, capsys, changes, message):
    run = sentiment_run(tmp_path, **changes)
    for argv in (["predict-sentiment", str(run), "good"], ["summary", str(run)]):
        assert main(argv) == 2
        _one_line(capsys, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": ["a"]}, "classes holds 1 name for a 3-way model"),
        ({"classes": None}, "classes is not a list of names (it is null)"),
        ({"classes": []}, "classes is empty"),
        ({"normalization": None}, "normalization is not an object (it is null)"),
    ],
)
def test_wrong_video_metadata_is_one_line(tmp_path, capsys, changes, message):
    run = video_run(tmp_path, **changes)
    frames = tmp_path / "clip"
    frames.mkdir()
    for i in range(2):
        Image.new("L", (32, 32)).save(frames / f"{i:03d}.png")
    for argv in (["label-video", str(run), str(frames)], ["summary", str(run)]):
        assert main(argv) == 2
        _one_line(capsys, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vocab": ["a", "b"]}, "vocab holds 2 tokens for a model of 4"),
        ({"vocab": 7}, "vocab is not a vocabulary"),
        ({"model": "x"}, "model is not an object (it is str)"),
    ],
)
def test_wrong_text_metadata_is_one_line(tmp_path, capsys, changes, message):
    run = text_run(tmp_path, **changes)
    assert main(["sample", str(run), "--prime", "a", "--length", "3"]) == 2
    _one_line(capsys, message)
