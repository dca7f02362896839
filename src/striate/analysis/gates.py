"""Gate and cell activity of a character LSTM over a text: the lecture's gates, watched.

For every character of a passage, :func:`trace_lstm` steps the trained model with the
lecture's LSTM equations (the same maths as :class:`striate.nn.cells.LSTMCell`, written out
here so the gates are kept rather than discarded)::

    f_t = σ(W_f · [h_{t-1}, x_t] + b_f)          forget gate
    i_t = σ(W_i · [h_{t-1}, x_t] + b_i)          input gate
    C~_t = tanh(W_C · [h_{t-1}, x_t] + b_C)      candidate memory
    C_t = f_t * C_{t-1} + i_t * C~_t
    o_t = σ(W_o [h_{t-1}, x_t] + b_o)            output gate
    h_t = o_t * tanh(C_t)

and records h, C, i, f, o and C~ of every unit of every layer. Karpathy, Johnson & Fei-Fei
(2015, "Visualizing and Understanding Recurrent Networks") found cells in such models that
track line length, quotes and bracket depth; :func:`pick_units` looks for those
automatically: for each of the features of :func:`text_features` the unit whose cell state
correlates most with it, then the units of highest variance. The colouring itself is
:func:`striate.artifacts.html.text_heatmap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from striate.errors import StriateError
from striate.models.char_rnn import CharRNN
from striate.nn.cells import LSTMCell

__all__ = [
    "SIGNALS",
    "Unit",
    "lstm_step",
    "pick_units",
    "text_features",
    "trace_lstm",
]

# what is recorded per unit and character, and what each name means
SIGNALS: dict[str, str] = {
    "c": "cell state C_t",
    "h": "hidden state h_t",
    "i": "input gate i_t",
    "f": "forget gate f_t",
    "o": "output gate o_t",
    "candidate": "candidate memory C~_t",
}

Trace = list[dict[str, Tensor]]  # per layer: signal name -> (T, H)


def lstm_step(cell: LSTMCell, x: Tensor, h: Tensor, c: Tensor) -> dict[str, Tensor]:
    """One LSTM step that keeps its gates: ``x`` (B, I), ``h``, ``c`` (B, H) -> every signal.

    The weights are the cell's (gate blocks ``i, f, C~, o`` stacked by rows, see
    :mod:`striate.nn.cells`); ``W · [h, x] + b = W_hh h + W_ih x + b_ih + b_hh``.
    """
    pre = x @ cell.weight_ih.T + h @ cell.weight_hh.T  # (B, 4H), blocks i, f, C~, o
    if cell.bias_ih is not None:
        pre = pre + cell.bias_ih + cell.bias_hh
    blocks = pre.chunk(4, dim=1)
    i = torch.sigmoid(blocks[LSTMCell.INPUT])  # i_t = σ(W_i·[h_{t-1}, x_t] + b_i)
    f = torch.sigmoid(blocks[LSTMCell.FORGET])  # f_t = σ(W_f·[h_{t-1}, x_t] + b_f)
    candidate = torch.tanh(blocks[LSTMCell.CANDIDATE])  # C~_t = tanh(W_C·[h_{t-1}, x_t] + b_C)
    o = torch.sigmoid(blocks[LSTMCell.OUTPUT])  # o_t = σ(W_o [h_{t-1}, x_t] + b_o)
    c = f * c + i * candidate  # C_t = f_t * C_{t-1} + i_t * C~_t
    h = o * torch.tanh(c)  # h_t = o_t * tanh(C_t)
    return {"c": c, "h": h, "i": i, "f": f, "o": o, "candidate": candidate}


@torch.no_grad()
def trace_lstm(model: CharRNN, ids: Tensor) -> Trace:
    """Every signal of every layer for each character: ``ids`` (T,) -> per layer {name: (T, H)}.

    The state starts at zero before the first character; dropout is not applied.
    """
    if model.rnn.cell != "lstm":
        raise StriateError(f"gate activity needs an LSTM model, this one is a {model.rnn.cell!r}")
    if model.rnn.bidirectional:
        raise StriateError("gate activity needs a unidirectional model")
    if ids.dim() != 1 or len(ids) < 1:
        raise StriateError("the text must hold at least one character")
    x = model.encode(ids.unsqueeze(0))[0]  # (T, I): one-hot vectors or embeddings
    trace: Trace = []
    for cell in model.rnn.cells:
        h = c = x.new_zeros(1, cell.hidden_size)
        steps: list[dict[str, Tensor]] = []
        for t in range(len(x)):
            signals = lstm_step(cell, x[t : t + 1], h, c)
            h, c = signals["h"], signals["c"]
            steps.append(signals)
        layer = {name: torch.cat([s[name] for s in steps]) for name in SIGNALS}
        trace.append(layer)
        x = layer["h"]  # the next layer reads this layer's h_t
    return trace


def text_features(text: str) -> dict[str, Tensor]:
    """Per-character features a cell might track (Karpathy et al. 2015), each (T,) float.

    ``position in line`` (characters since the last newline), ``bracket depth`` (open
    ``( [ {`` minus closed, never below 0) and ``inside quotes`` (1 between a ``"`` and the
    next one). A character's feature describes the text up to and including it.
    """
    position, depth, quoted = [], [], []
    col, level, inside = 0, 0, False
    for ch in text:
        col = 0 if ch == "\n" else col + 1
        if ch in "([{":
            level += 1
        elif ch in ")]}":
            level = max(0, level - 1)
        if ch == '"':
            inside = not inside
        position.append(col)
        depth.append(level)
        quoted.append(float(inside))
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    return {
        "position in line": as_tensor(position),
        "bracket depth": as_tensor(depth),
        "inside quotes": as_tensor(quoted),
    }


@dataclass(frozen=True)
class Unit:
    """One unit of one layer (both 0-based) and why it was chosen."""

    layer: int
    index: int
    reason: str

    @property
    def label(self) -> str:
        return f"layer {self.layer + 1}, unit {self.index}"


def _correlations(values: Tensor, feature: Tensor) -> Tensor:
    """Pearson r of each column of ``values`` (T, H) with ``feature`` (T,); 0 where flat."""
    v = values.double() - values.double().mean(0)
    f = feature - feature.mean()
    denominator = v.norm(dim=0) * f.norm()
    r = (v * f.unsqueeze(1)).sum(0) / denominator.clamp_min(1e-12)
    return torch.where(denominator > 1e-12, r, torch.zeros_like(r))


def pick_units(
    trace: Trace,
    text: str,
    count: int = 6,
    layers: Sequence[int] | None = None,
    signal: str = "c",
    warmup: int = 20,
) -> list[Unit]:
    """Up to ``count`` units worth looking at, from ``layers`` (0-based; default all).

    First, for each feature of :func:`text_features` that varies over the text, the unit
    whose ``signal`` correlates most strongly with it (|Pearson r|); then the units of
    highest variance of ``signal``. No unit is picked twice. The first ``warmup``
    characters (at most a quarter of the text), while the state settles from zero, are not
    counted.
    """
    if count < 1:
        raise StriateError("pick at least one unit")
    layers = list(range(len(trace))) if layers is None else list(layers)
    for layer in layers:
        if not 0 <= layer < len(trace):
            raise StriateError(f"layer {layer + 1} does not exist (the model has {len(trace)})")
    if signal not in SIGNALS:
        raise StriateError(f"unknown signal {signal!r}; use one of {', '.join(SIGNALS)}")
    skip = min(warmup, len(text) // 4)  # the state starts at zero: leave out the transient
    values = torch.cat([trace[k][signal] for k in layers], 1).double()[skip:]  # (T', sum of H)
    owners = [(k, u) for k in layers for u in range(trace[k][signal].shape[1])]
    chosen: list[Unit] = []
    taken: set[int] = set()
    if len(values) > 2:
        for name, feature in text_features(text).items():
            feature = feature[skip:]
            if len(chosen) >= count or float(feature.std()) == 0.0:
                continue
            r = _correlations(values, feature)
            order = r.abs().argsort(descending=True).tolist()
            best = next(column for column in order if column not in taken)
            taken.add(best)
            layer, unit = owners[best]
            chosen.append(Unit(layer, unit, f"follows {name} (r = {float(r[best]):+.2f})"))
    variance = values.var(0) if len(values) > 1 else torch.zeros(values.shape[1])
    for column in variance.argsort(descending=True).tolist():
        if len(chosen) >= count:
            break
        if column not in taken:
            taken.add(column)
            layer, unit = owners[column]
            spread = float(variance[column]) ** 0.5
            chosen.append(Unit(layer, unit, f"varies most ({signal} std {spread:.2f})"))
    return chosen
