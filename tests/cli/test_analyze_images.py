"""``striate analyze`` for CNNs end to end: a briefly trained LeNet-5 run, every picture
written, decodable and not blank, and bad input refused with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from striate.analysis.toeplitz import conv_matrix
from striate.apps import analysis
from striate.apps import image_classification as ic
from striate.artifacts.checkpoint import save_checkpoint
from striate.cli.main import main
from striate.data.sources.images import load_image_data
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """LeNet-5 trained for 40 steps on the bundled 8x8 digits (shown at 28 px)."""
    runs = tmp_path_factory.mktemp("runs")
    engine = EngineConfig(max_steps=40, batch_size=32, lr=0.05, progress=False, log_every=20)
    config = ic.ImageTrainConfig(
        model="lenet5",
        data="digits",
        image_size=28,
        name="lenet",
        runs_dir=str(runs),
        engine=engine,
    )
    return ic.train(config).run


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> list[Path]:
    """Two test digits (a 3 and a 7) as PNG files."""
    folder = tmp_path_factory.mktemp("digits")
    data = load_image_data("digits", "test", image_size=28)
    paths = []
    for label in (3, 7):
        index = int((data.labels == label).nonzero()[0])
        path = folder / f"digit{label}.png"
        Image.fromarray(data.images[index, 0].numpy()).save(path)
        paths.append(path)
    return paths


def _written(capsys) -> Path:
    out = capsys.readouterr().out
    assert "wrote " in out, out
    path = Path(out.split("wrote ", 1)[1].strip())
    _check_png(path)
    return path


def _check_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).float()
    assert min(pixels.shape[:2]) >= 100
    assert pixels.flatten(0, 1).unique(dim=0).shape[0] > 20  # not one colour, a picture


def test_filters_features_and_saliency(run, digits, capsys):
    assert main(["analyze", "filters", str(run)]) == 0
    assert _written(capsys) == run / "analysis" / "filters.png"
    assert main(["analyze", "features", str(run), str(digits[0]), "--layer", "features.c3"]) == 0
    assert _written(capsys).name == "features-features.c3-digit3.png"
    assert main(["analyze", "saliency", str(run), str(digits[0]), "--class", "3"]) == 0
    three = _written(capsys)
    assert main(["analyze", "saliency", str(run), str(digits[0]), "--class", "8"]) == 0
    eight = _written(capsys)
    assert three.name == "saliency-digit3-3.png" and eight.name == "saliency-digit3-8.png"
    assert three.read_bytes() != eight.read_bytes()
    out = run.parent / "grad-cam-c3.png"
    args = ["analyze", "saliency", str(run), str(digits[1]), "--layer", "features.c3"]
    assert main([*args, "--out", str(out)]) == 0
    assert _written(capsys) == out


def test_worst_errors_are_wrong_and_sorted(run, capsys):
    assert main(["analyze", "worst-errors", str(run), "--count", "8"]) == 0
    png = _written(capsys)
    listed = json.loads(png.with_suffix(".json").read_text())["errors"]
    assert 1 <= len(listed) <= 8
    confidence = [e["top"][0]["probability"] for e in listed]
    assert confidence == sorted(confidence, reverse=True)
    test = load_image_data("digits", "test", image_size=28)
    for error in listed:
        assert (
            error["top"][0]["class"] != error["true"] == test.classes[test.labels[error["index"]]]
        )
        assert len(error["top"]) == 5
        top = ic.classify(run, [test.images[error["index"]]])[0]
        assert top[0][0] == error["top"][0]["class"]


def test_receptive_field_and_toeplitz_pictures(run, digits, capsys, tmp_path, monkeypatch):
    args = ["analyze", "rf-picture", str(run), "--image", str(digits[0])]
    assert main([*args, "--layer", "features.c3"]) == 0
    assert _written(capsys).name == "receptive-field-features.c3.png"
    monkeypatch.chdir(tmp_path)  # a bare model name writes into the current directory
    assert main(["analyze", "rf-picture", "lenet5", "--image-size", "40"]) == 0
    assert _written(capsys).parent == Path(".")
    assert (
        main(["analyze", "toeplitz", "lenet5", "--layer", "features.c1", "--input-size", "12"]) == 0
    )
    assert _written(capsys).name == "lenet5-toeplitz-features.c1-12x12.png"
    args = ["analyze", "toeplitz", str(run), "--layer", "features.c3", "--input-size", "9,8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    model, _ = ic.load_classifier(run)
    rows, cols = conv_matrix(model.net.features.c3, (9, 8)).shape
    assert f"matrix {rows} x {cols}: 16 x 6 blocks of 20 x 72" in out
    _check_png(Path(out.split("wrote ", 1)[1].strip()))


def _refused(capsys, args: list[str], *words: str) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    for word in words:
        assert word in captured.err


def test_bad_input_is_one_line_and_exit_code_2(run, digits, capsys, tmp_path):
    image = str(digits[0])
    _refused(
        capsys,
        ["analyze", "features", str(run), image, "--layer", "features.c4"],
        "no layer 'features.c4'",
        "features.c3",
    )
    _refused(capsys, ["analyze", "features", str(run), image, "--layer", "head.f6"], "not maps")
    _refused(capsys, ["analyze", "saliency", str(run), image, "--class", "cat"], "unknown class")
    text_run = tmp_path / "text-run"
    save_checkpoint(text_run / "checkpoints", 1, {}, {"kind": "text-generation"})
    _refused(capsys, ["analyze", "filters", str(text_run)], "not an image classifier")
    _refused(capsys, ["analyze", "saliency", str(text_run), image], "not an image classifier")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    _refused(capsys, ["analyze", "saliency", str(run), str(not_an_image)], "notes.png")
    _refused(capsys, ["analyze", "features", str(run), "missing.png", "--layer", "features.c1"])
    big = ["analyze", "toeplitz", "alexnet", "--layer", "features.0", "--input-size", "224,224"]
    _refused(capsys, big, "the matrix would be")
    _refused(
        capsys, ["analyze", "toeplitz", str(run), "--layer", "features.s2", "--input-size", "8"]
    )
    _refused(capsys, ["analyze", "toeplitz", "lenet5", "--layer", "c1", "--input-size", "8,x"])
    _refused(capsys, ["analyze", "rf-picture", str(run), "--layer", "head"], "choose one of")
    with pytest.raises(StriateError, match="channel"):  # the run takes grey images
        analysis.saliency(run, torch.rand(3, 28, 28))
    with pytest.raises(StriateError, match="channel"):
        analysis.feature_maps(run, torch.rand(2, 28, 28), "features.c1")
