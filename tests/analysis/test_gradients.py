"""The vanishing-gradient measurement: exact on tiny cases, and the lecture's claim measured."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from striate.analysis.gradients import gradient_norms, random_projection
from striate.apps import recurrent_analysis as ra
from striate.cli.main import main
from striate.data.sources.memory_tasks import AddingProblem
from striate.errors import StriateError
from striate.nn.recurrent import Recurrent


def test_simple_rnn_matches_the_product_of_jacobians():
    # dL/dh_s = v^T J_T ... J_{s+1},  J_k = diag(1 - h_k^2) W_hh: the lecture's argument, by hand
    torch.manual_seed(0)
    layer = Recurrent("rnn", 3, 4).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    curve = gradient_norms(layer, x, seed=5)
    cell = layer.cells[0]
    v = random_projection(4, seed=5)(torch.eye(4, dtype=torch.float64))  # v itself
    per_sample = []
    for b in range(2):
        h, hs = torch.zeros(4, dtype=torch.float64), []
        with torch.no_grad():
            for t in range(6):
                h = torch.tanh(
                    cell.weight_hh @ h + cell.weight_ih @ x[b, t] + cell.bias_ih + cell.bias_hh
                )
                hs.append(h)
        grad = v.clone()
        expected = [grad.norm()]
        for k in range(5, 0, -1):  # from h_k back to h_{k-1}
            grad = (grad * (1 - hs[k] ** 2)) @ cell.weight_hh
            expected.append(grad.norm())
        per_sample.append(torch.stack(expected))
    torch.testing.assert_close(curve.norms, torch.stack(per_sample).mean(0))
    assert curve.at(0) == pytest.approx(1.0)  # ||v|| = 1


def _bumped_loss(layer, x, v, layer_k, step, delta):
    """v · h_T(top) with ``delta`` added to layer ``layer_k``'s hidden state h at ``step``."""
    for k, cell in enumerate(layer.cells):
        state, outputs = None, []
        for t in range(x.shape[1]):
            h, state = cell(x[:, t], state)
            if k == layer_k and t == step:
                h = h + delta
                state = (h, state[1]) if isinstance(state, tuple) else h
            outputs.append(h)
        x = torch.stack(outputs, 1)
    return x[:, -1] @ v


@pytest.mark.parametrize(
    ("cell", "layers", "layer_k"), [("lstm", 2, 0), ("gru", 1, 0), ("rnn", 2, 1)]
)
def test_every_lag_agrees_with_finite_differences(cell, layers, layer_k):
    # an independent computation: perturb each coordinate of h_s and watch L_t move
    torch.manual_seed(1)
    layer = Recurrent(cell, 2, 3, num_layers=layers).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    v = random_projection(3, seed=0)(torch.eye(3, dtype=torch.float64))
    curve = gradient_norms(layer, x, layer_index=layer_k)
    eps = 1e-6
    with torch.no_grad():
        for step in range(5):
            grad = torch.zeros(2, 3, dtype=torch.float64)
            for j in range(3):
                delta = torch.zeros(2, 3, dtype=torch.float64)
                delta[:, j] = eps
                up = _bumped_loss(layer, x, v, layer_k, step, delta)
                down = _bumped_loss(layer, x, v, layer_k, step, -delta)
                grad[:, j] = (up - down) / (2 * eps)
            lag = 4 - step
            assert curve.at(lag) == pytest.approx(float(grad.norm(dim=1).mean()), rel=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each cell trained 700 Adam steps on the adding problem (length 30), measured to lag 200.

    700 steps: the LSTM leaves the task's plateau within 300 steps for only some seeds,
    within 700 for each of the seeds 0-3 tried. On one thread: for matrices this small a
    second one only adds waiting (ten times the CPU time on a busy machine).
    """
    out = tmp_path_factory.mktemp("gradients") / "trained.png"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ra.vanishing_gradients(lag=200, hidden=32, train_on_adding=700, out=out, batch=16)
    finally:
        torch.set_num_threads(threads)


def test_gated_cells_keep_the_gradient_the_simple_rnn_loses(trained):
    # The lecture: "error gradients vanish exponentially quickly in the size of the time lag"
    # for the simple RNN; LSTM and GRU were made to keep them. Measured at lag 100 (seeds
    # 0-3): simple RNN 1e-44..8e-10, LSTM 3e-3..9e-3, GRU 4e-2..0.85. Stated thresholds: at
    # lag 100 the gated cells keep more than 1e-3 of a gradient and the simple RNN less than
    # 1e-8; each gated cell's norm is at least 1e6 times the simple RNN's at lag 100 and
    # 1e10 times at lag 200.
    png, curves = trained
    rnn, lstm, gru = curves["rnn"], curves["lstm"], curves["gru"]
    assert lstm.at(100) > 1e-3 and gru.at(100) > 1e-3
    assert rnn.at(100) < 1e-8
    for lag, factor in ((100, 1e6), (200, 1e10)):
        assert lstm.at(lag) > factor * rnn.at(lag)
        assert gru.at(lag) > factor * rnn.at(lag)
    # ... and the gated cells did learn the task, which needs a memory of 27+ steps
    mse = json.loads(png.with_suffix(".json").read_text())["val_mse"]
    baseline = AddingProblem.baseline_mse  # always answering 1.0
    assert mse["lstm"] < 0.1 * baseline and mse["gru"] < 0.1 * baseline
    assert mse["rnn"] > 0.5 * baseline
    with Image.open(png) as image:
        assert image.size[0] > 400 and image.size[1] > 250
        assert len(image.getcolors(1 << 20) or []) > 20  # lines, text: not a blank picture


def test_fresh_cells_command_line(tmp_path, capsys):
    out = tmp_path / "fresh.png"
    assert main(["analyze", "gradients", "--lag", "60", "--hidden", "16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "simple RNN" in printed and "LSTM" in printed and "GRU" in printed
    assert f"wrote {out}" in printed and out.is_file()
    numbers = json.loads(out.with_suffix(".json").read_text())["curves"]
    assert {len(c["norms"]) for c in numbers.values()} == {61}
    assert all(c["norms"][0] == pytest.approx(1.0) for c in numbers.values())  # ||v|| = 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cells", "rnn,tree"], "unknown recurrent cell 'tree'"),
        (["--lag", "0"], "lag must be at least 1"),
        (["--out", "x.jpg"], "is a PNG file"),
        (["no-such-run"], "no run found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, tmp_path, capsys):
    assert main(["analyze", "gradients", *argv, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_layer_must_be_unidirectional_and_shapes_must_fit():
    with pytest.raises(StriateError, match="unidirectional"):
        gradient_norms(Recurrent("lstm", 2, 3, bidirectional=True), torch.zeros(1, 4, 2))
    with pytest.raises(StriateError, match="shape"):
        gradient_norms(Recurrent("lstm", 2, 3), torch.zeros(1, 4, 5))
    with pytest.raises(StriateError, match="layer 2 does not exist"):
        gradient_norms(Recurrent("gru", 2, 3), torch.zeros(1, 4, 2), layer_index=2)
