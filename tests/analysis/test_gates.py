"""Gate and cell activity of a char-LSTM: the recorded numbers, the picks, the HTML."""

from __future__ import annotations

import html as stdlib_html
import re

import pytest
import torch

from striate.analysis.gates import lstm_step, pick_units, text_features, trace_lstm
from striate.apps import recurrent_analysis as ra
from striate.apps import text_generation as tg
from striate.artifacts.html import text_heatmap
from striate.cli.main import main
from striate.engine.loop import EngineConfig
from striate.errors import StriateError
from striate.nn.cells import LSTMCell

TEXT = 'def f(x):\n    return "<b>" + str(x[0]) & y  # a < b > c\n'


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """A two-layer char-LSTM trained a few steps on the embedded corpus (one thread: faster
    for a model this small)."""
    root = tmp_path_factory.mktemp("gates")
    engine = {**tg.text_engine_defaults().__dict__, "batch_size": 8, "max_steps": 6}
    engine.update(progress=False, log_every=3, lr=5e-3)
    config = tg.TextTrainConfig(
        max_chars=12_000, cell="lstm", layers=2, hidden=24, tbptt="24", sample_every=0,
        name="lstm", runs_dir=str(root), engine=EngineConfig(**engine),
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return tg.train(config).run
    finally:
        torch.set_num_threads(threads)


def test_lstm_step_is_the_lecture_s_equations_and_the_cell_s_step():
    torch.manual_seed(0)
    cell = LSTMCell(5, 4)
    x, h, c = torch.randn(3, 5), torch.randn(3, 4), torch.randn(3, 4)
    got = lstm_step(cell, x, h, c)
    b = cell.bias_ih + cell.bias_hh
    w = torch.cat([cell.weight_hh, cell.weight_ih], 1)  # W · [h_{t-1}, x_t], the lecture's form
    hx = torch.cat([h, x], 1)
    block = lambda k: hx @ w[4 * k : 4 * k + 4].T + b[4 * k : 4 * k + 4]  # noqa: E731
    i, f, c_tilde, o = block(0).sigmoid(), block(1).sigmoid(), block(2).tanh(), block(3).sigmoid()
    expected_c = f * c + i * c_tilde
    expected = {"i": i, "f": f, "candidate": c_tilde, "o": o, "c": expected_c}
    expected["h"] = o * expected_c.tanh()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value)
    h_cell, (_, c_cell) = cell(x, (h, c))
    torch.testing.assert_close(got["h"], h_cell)
    torch.testing.assert_close(got["c"], c_cell)


def test_trace_records_what_the_trained_model_computes(lstm_run):
    model, vocab, _ = tg.load_text_model(lstm_run)
    text = TEXT[:30]
    ids = vocab.encode(text)
    trace = trace_lstm(model, ids)
    assert len(trace) == 2 and trace[0]["f"].shape == (30, 24)
    with torch.no_grad():
        outputs, (_, c) = model.rnn(model.encode(ids.unsqueeze(0)))
    torch.testing.assert_close(trace[1]["h"], outputs[0])  # the layer's own forward pass
    torch.testing.assert_close(trace[0]["c"][-1], c[0, 0])
    torch.testing.assert_close(trace[1]["c"][-1], c[1, 0])
    # one manual step of layer 2 at t = 7 from the recorded state at t = 6
    step = lstm_step(model.rnn.cells[1], trace[0]["h"][7:8], trace[1]["h"][6:7], trace[1]["c"][6:7])
    for name in ("i", "f", "o", "candidate", "c", "h"):
        torch.testing.assert_close(trace[1][name][7:8], step[name])
    gates = torch.cat([trace[k][g] for k in (0, 1) for g in ("i", "f", "o")])
    assert float(gates.min()) >= 0 and float(gates.max()) <= 1


def test_units_that_follow_a_feature_are_found():
    text = "ab(c[d]e)f\n" * 5
    features = text_features(text)
    assert features["position in line"][:4].tolist() == [1, 2, 3, 4]
    assert features["bracket depth"][:6].tolist() == [0, 0, 1, 1, 2, 2]
    noise = torch.randn(len(text), 8, generator=torch.Generator().manual_seed(0)) * 0.1
    noise[:, 5] += features["bracket depth"].float()  # unit 5 tracks brackets
    noise[:, 2] = 10 * torch.randn(len(text), generator=torch.Generator().manual_seed(1))
    trace = [{"c": noise}]
    units = pick_units(trace, text, count=3)
    reasons = {u.index: u.reason for u in units}
    assert "bracket depth" in reasons[5]
    assert "varies most" in reasons[2]
    assert len({(u.layer, u.index) for u in units}) == 3


def test_html_colours_each_character_and_escapes_the_text(lstm_run, tmp_path):
    page = tmp_path / "page.html"
    text_file = tmp_path / "code.txt"
    text_file.write_text(TEXT + "∑ not in the vocabulary\n", encoding="utf-8")
    path = ra.gates(lstm_run, text_file, units=[3, 17], layer=2, out=page)
    assert path == page
    document = page.read_text(encoding="utf-8")
    known = set(tg.load_text_model(lstm_run)[1].chars)
    used = "".join(ch for ch in TEXT + "∑ not in the vocabulary\n" if ch in known)
    assert "<" in used and '"' in used and "∑" not in used
    assert "Left out" in document and "&#x27;∑&#x27;" in document  # dropped ones are listed
    assert "<b>" not in document  # the text's markup is escaped, one character per span
    for raw, escaped in (("<", "&lt;"), (">", "&gt;"), ("&", "&amp;"), ('"', "&quot;")):
        assert document.count(f'">{escaped}</span>') == 2 * 5 * used.count(raw)
    rows = re.findall(r'<div class="heat heat-text">(.*?)</div>', document, re.S)
    assert len(rows) == 2 * len(ra.DEFAULT_SIGNALS)  # two units, one row per signal
    for row in rows:
        spans = re.findall(r'<span class="ch" style="background:#[0-9a-f]{6}" title="[-+]\d', row)
        assert len(spans) == row.count('class="ch"') == len(used)
        text_back = re.sub(r"<[^>]+>", "", row).replace("↵", "")
        assert stdlib_html.unescape(text_back) == used
    assert "layer 2, unit 17" in document
    assert "http://" not in document and "https://" not in document and "<script" not in document
    assert page.with_suffix(".png").stat().st_size > 5_000


def test_units_are_picked_automatically_by_default(lstm_run, tmp_path):
    text_file = tmp_path / "t.txt"
    text_file.write_text(TEXT * 3, encoding="utf-8")
    activity = ra.gate_activity(lstm_run, text_file.read_text(), png=tmp_path / "g.png", count=4)
    assert len(activity.units) == 4
    assert any("follows" in u.reason for u in activity.units)
    assert activity.body.count('class="unit"') == 4


def test_command_line_and_bad_input(lstm_run, tmp_path, capsys):
    text_file = tmp_path / "t.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    run = str(lstm_run)
    assert main(["analyze", "gates", run, "--text", str(text_file), "--units", "1,2"]) == 0
    assert f"wrote {lstm_run / 'gates.html'}" in capsys.readouterr().out
    bad = [
        (["--text", str(tmp_path / "missing.txt")], "does not exist"),
        (["--text", str(text_file), "--layer", "3"], "layer 3 does not exist"),
        (["--text", str(text_file), "--units", "24"], "unit 24 does not exist"),
        (["--text", str(text_file), "--units", "a,b"], "comma-separated"),
    ]
    for args, message in bad:
        assert main(["analyze", "gates", run, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_heat_rows_escape_every_special_character():
    text = "<a href='x'>&\"\n"
    row = text_heatmap(text, [0.5] * len(text), "signed", label="<label>")
    assert "<a " not in row and "&lt;label&gt;" in row
    assert row.count('class="ch"') == len(text)
    pieces = re.findall(r'title="[^"]*">(.*?)</span>', row)
    assert pieces[:7] == ["&lt;", "a", " ", "h", "r", "e", "f"]
    assert "&#x27;" in row and "&amp;" in row and "&quot;" in row
    with pytest.raises(ValueError):
        text_heatmap("ab", [1.0])


def test_other_cells_are_refused(tmp_path):
    model = tg.CharRNN(5, "gru", 4, 1)
    with pytest.raises(StriateError, match="needs an LSTM"):
        trace_lstm(model, torch.tensor([0, 1, 2]))
