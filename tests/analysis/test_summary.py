"""striate summary: shapes, parameters, multiply-adds and receptive fields, checked against
numbers worked out by hand, and run on every registered model and on trained runs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from striate.analysis.summary import summarize
from striate.apps import image_classification as ic
from striate.apps import text_generation as tg
from striate.cli.main import main
from striate.engine.loop import EngineConfig
from striate.models import count_parameters, create_model, get_model_spec, list_models
from striate.nn.recurrent import Recurrent


def test_small_cnn_against_hand_computed_numbers():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)
    )
    s = summarize(net, (torch.rand(1, 1, 6, 6),), image_size=6)
    rows = {layer.name: layer for layer in s.layers}
    # conv 3x3, 1 -> 2 channels: 2*9 weights + 2 biases; 2*4*4 outputs of 9 MACs each
    assert (rows["0"].output_shape, rows["0"].params, rows["0"].macs) == ([1, 2, 4, 4], 20, 288)
    assert (rows["0"].receptive_field, rows["0"].jump) == (3, 1)
    # 2x2/2 pooling: r = 3 + (2 - 1) * 1 = 4, jump 2; no parameters, no MACs
    assert (rows["2"].output_shape, rows["2"].receptive_field, rows["2"].jump) == (
        [1, 2, 2, 2],
        4,
        2,
    )
    assert rows["2"].params == rows["2"].macs == 0
    # linear 8 -> 3: 24 weights + 3 biases, 3 outputs of 8 MACs
    assert (rows["4"].output_shape, rows["4"].params, rows["4"].macs) == ([1, 3], 27, 24)
    assert (s.params, s.macs) == (47, 312)


class _Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = Recurrent("lstm", 3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_recurrent_layer_counts_each_time_step():
    s = summarize(_Tagger(), (torch.rand(2, 5, 3),))
    rnn, head = s.layers
    # LSTM: 4 gate blocks of 4 rows; W_ih 16x3, W_hh 16x4, two biases of 16
    assert (rnn.name, rnn.params, rnn.output_shape) == ("rnn", 48 + 64 + 32, [2, 5, 4])
    assert rnn.macs == 2 * 5 * (48 + 64)  # every sequence and time step: W_ih x + W_hh h
    assert head.macs == 2 * 5 * 2 * 4
    assert s.params == 144 + 10


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_totals_its_parameters(name):
    size = get_model_spec(name).min_image_size
    size = max(size, 64) if name == "alexnet" else size
    net = create_model(name, 10, 3, size)
    s = summarize(net, (torch.rand(1, 3, size, size),), image_size=size)
    assert s.params == count_parameters(net)
    assert s.layers[-1].output_shape == [1, 10]
    assert s.macs > 0 and all(layer.output_shape for layer in s.layers if layer.params)
    assert any(layer.receptive_field for layer in s.layers)


def test_cli_summary_of_an_image_run_and_of_a_text_run(tmp_path, capsys):
    engine = EngineConfig(epochs=1, batch_size=32, max_steps=1, progress=False)
    config = ic.ImageTrainConfig(model="lenet5", runs_dir=str(tmp_path), name="img", engine=engine)
    ic.train(config)
    assert main(["summary", "img", "--runs-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    first = data["layers"][0]
    assert data["input_shapes"] == [[1, 1, 32, 32]] and first["output_shape"] == [1, 6, 28, 28]
    assert first["params"] == 6 * 25 + 6 and first["receptive_field"] == 5

    text = tg.TextTrainConfig(
        max_chars=20_000, cell="gru", layers=1, hidden=8, tbptt="16", sample_every=0,
        runs_dir=str(tmp_path), name="txt", engine=engine,
    )  # fmt: skip
    tg.train(text)
    assert main(["summary", "txt", "--runs-dir", str(tmp_path), "--input-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "(text-generation)" in out and "1x10x8" in out
    assert main(["summary", "txt", "--runs-dir", str(tmp_path), "--input-size", "3,4"]) == 2
