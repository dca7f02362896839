"""Two things a predictor must not pass on: a model's outputs that are not finite (NaN
weights, or weights so large the logits overflow) and text that is not valid Unicode (lone
surrogates: undecodable bytes of argv, "\\ud800" in JSON). Each is one line on the command
line and a 400 from the web server, never a traceback, a 500 or ``NaN`` in JSON.

The runs are untrained models written straight to a checkpoint (see untrained_runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from untrained_runs import image_run, sentiment_run, text_run, video_run

import striate
from striate.cli.main import main
from striate.cli.predict import _print_json
from striate.data.vocab import CharVocab
from striate.errors import StriateError, check_finite
from striate.nn.decoding import beam_search
from striate.predict.base import Limits, check_text

NOT_FINITE = "the model's outputs are not finite"


def poisoned(run: Path, value: float) -> Path:
    """``run`` with every weight matrix (and filter bank) set to ``value``."""
    (path,) = run.glob("checkpoints/step-*/model.safetensors")
    state = load_file(path)
    for name, tensor in state.items():
        if name.endswith("weight") and tensor.dim() > 1:
            tensor.fill_(value)
    save_file(state, path)
    return run


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.new("L", (32, 32), 200).save(path)
    return path


def _one_line(capsys: pytest.CaptureFixture[str], needle: str) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and needle in captured.err, captured.err
    return captured.out


# ---------------------------------------------------------------------------------------------
# outputs that are not finite


def test_nan_weights_are_refused_when_the_run_is_loaded(tmp_path, png, capsys):
    run = poisoned(image_run(tmp_path), float("nan"))
    with pytest.raises(StriateError, match=r"holds NaN weights \(net\..*weight\)"):
        striate.load(run, "cpu")
    assert main(["classify", str(run), str(png), "--json"]) == 2
    assert _one_line(capsys, "holds NaN weights") == ""


def test_overflowing_logits_are_refused_by_every_classifier(tmp_path, png, capsys):
    """Finite weights whose logits overflow: the predictors check their outputs."""
    run = poisoned(image_run(tmp_path), 3e38)
    with pytest.raises(StriateError, match=NOT_FINITE):
        striate.load(run, "cpu").predict(str(png))
    for argv in (["classify", str(run), str(png)], ["classify", str(run), str(png), "--json"]):
        assert main(argv) == 2
        assert "NaN" not in _one_line(capsys, NOT_FINITE)
    assert main(["analyze", "saliency", str(run), str(png), "--out", str(tmp_path / "s.png")]) == 2
    _one_line(capsys, NOT_FINITE)
    assert not (tmp_path / "s.png").exists()
    clip = torch.full((2, 1, 32, 32), 200, dtype=torch.uint8)
    with pytest.raises(StriateError, match=NOT_FINITE):
        striate.load(poisoned(video_run(tmp_path), 3e38), "cpu").predict(clip)


def test_overflowing_recurrent_models_are_refused(tmp_path, capsys):
    predictor = striate.load(sentiment_run(tmp_path), "cpu")
    predictor.model.head.bias.data.fill_(float("inf"))  # saturated gates keep an LSTM finite
    with pytest.raises(StriateError, match=NOT_FINITE):
        predictor.predict("good")
    run = poisoned(text_run(tmp_path), 3e38)
    assert main(["sample", str(run), "--prime", "a", "--length", "5"]) == 2
    _one_line(capsys, NOT_FINITE)


@pytest.mark.parametrize("beam", [1, 3])
def test_a_beam_search_over_nan_scores_says_so(beam):
    """Translation and captioning decode through this: NaN log-probabilities end no
    hypothesis, which used to be "max() arg is an empty sequence"."""

    def step(tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((len(tokens), 6), float("nan")), state

    with pytest.raises(StriateError, match=NOT_FINITE):
        beam_search(step, torch.zeros(2, 1), 2, 2, 3, beam_size=beam, max_len=5)


def test_check_finite_names_nan_or_infinity():
    assert check_finite(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(StriateError, match=r"not finite \(NaN\)"):
        check_finite(torch.tensor([0.0, float("nan"), float("inf")]))
    with pytest.raises(StriateError, match=r"not finite \(infinite\)"):
        check_finite(torch.tensor([0.0, float("-inf")]))


def test_json_output_never_holds_nan(capsys):
    with pytest.raises(StriateError, match=NOT_FINITE):
        _print_json([{"probability": float("nan")}])
    assert capsys.readouterr().out == ""
    assert _print_json([{"probability": 0.5}]) == 0
    assert json.loads(capsys.readouterr().out) == [{"probability": 0.5}]


# ---------------------------------------------------------------------------------------------
# text that is not valid Unicode


def test_a_lone_surrogate_is_refused_with_its_position():
    assert check_text("text 1", "ok é 😀", Limits()) == "ok é 😀"
    with pytest.raises(StriateError, match=r"^text 1 is not valid Unicode \(a lone surrogate "):
        check_text("text 1", "ab\ud800", Limits())
    with pytest.raises(StriateError, match="at position 2"):
        check_text("text 1", "ab\udcff", Limits())


def test_a_character_vocabulary_names_a_surrogate_instead_of_crashing():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(StriateError, match=r"not in the vocabulary of 3: '\\udcff'"):
        vocab.encode("a\udcff")


def test_undecodable_argv_is_one_line_for_every_text_command(tmp_path, capsys):
    """``--prime $'\\xff\\xfe'``: Python hands such bytes over as lone surrogates."""
    prime = b"\xff\xfe".decode("utf-8", "surrogateescape")
    assert main(["sample", str(text_run(tmp_path)), "--prime", prime, "--length", "3"]) == 2
    _one_line(capsys, "the prime is not valid Unicode (a lone surrogate at position 0)")
    assert main(["predict-sentiment", str(sentiment_run(tmp_path)), f"good {prime}"]) == 2
    _one_line(capsys, "text 1 is not valid Unicode (a lone surrogate at position 5)")


def test_the_server_answers_text_that_is_not_unicode_with_a_400(tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from striate.serve.app import create_app

    app = create_app([str(text_run(tmp_path)), str(sentiment_run(tmp_path))], device="cpu")
    with TestClient(app) as client:
        for route in ("txt/predict", "txt/stream", "sent/predict"):
            response = client.post(
                f"/api/{route}",
                content=b'{"inputs": "a\\ud800", "options": {}}',
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, (route, response.text)
            assert "not valid Unicode (a lone surrogate at position 1)" in response.json()["error"]


def test_the_server_will_not_start_on_a_model_whose_outputs_are_not_finite(tmp_path):
    """It predicts once on every run before serving: a broken one is named then, in one
    line, rather than answering every request with an error."""
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    from striate.serve.app import create_app

    with pytest.raises(StriateError, match=NOT_FINITE):
        create_app([str(poisoned(image_run(tmp_path), 3e38))], device="cpu")
