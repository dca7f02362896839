"""Seeing inside recurrent models: vanishing gradients and LSTM gate activity.

``striate analyze gradients`` and ``striate analyze gates`` are these functions::

    from striate.apps import recurrent_analysis as ra
    png, curves = ra.vanishing_gradients(("rnn", "lstm", "gru"), lag=300, train_on_adding=700)
    print({cell: curve.at(100) for cell, curve in curves.items()})
    html = ra.gates("runs/char-lstm-...", "notes.txt")          # RUN/gates.html (+ gates.png)

:func:`vanishing_gradients` measures ``||∂L_t/∂h_{t-lag}||`` (see
:mod:`striate.analysis.gradients`) for fresh layers of each cell, for the same layers after
``train_on_adding`` steps on the adding problem (trained with the engine's ``fit``), or for
the model of a trained text run; :func:`gates` colours a text by the gates and cell states
of a character LSTM (see :mod:`striate.analysis.gates`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.analysis.gates import SIGNALS, Unit, pick_units, trace_lstm
from striate.analysis.gradients import GradientCurve, gradient_norms, head_readout
from striate.apps.text_generation import generate, load_text_model
from striate.artifacts import html
from striate.artifacts.recurrent_plots import cell_label, plot_gradient_norms, plot_unit_activity
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir, locate_checkpoint
from striate.atomic import write_json
from striate.data.sources.memory_tasks import AddingProblem
from striate.data.sources.text import load_text, split_text
from striate.engine.device import resolve_device
from striate.engine.loop import EngineConfig, fit
from striate.engine.steps import StepOutput
from striate.errors import StriateError
from striate.models.char_rnn import CharRNN
from striate.nn.recurrent import CELLS, Recurrent

__all__ = [
    "Adder",
    "AddingStep",
    "GateActivity",
    "describe_curves",
    "gate_activity",
    "gates",
    "held_out_text",
    "train_adder",
    "vanishing_gradients",
]

DEFAULT_SIGNALS = ("c", "h", "i", "f", "o")


# ---------------------------------------------------------------------------------------------
# the adding problem, for models whose gradients have had a reason to learn to survive


class Adder(nn.Module):
    """(B, T, 2) -> one recurrent layer -> its last hidden state -> Linear -> (B, 1)."""

    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        self.rnn = Recurrent(cell, AddingProblem.input_size, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)
        return self.out(outputs[:, -1])


class AddingStep:
    """Step function of the adding problem for ``fit``: mean squared error of the sum."""

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        inputs, targets = batch
        loss = F.mse_loss(model(inputs).float(), targets)
        n = torch.full((), targets.shape[0], device=targets.device)
        return StepOutput(loss, {"loss": loss.detach() * n, "count": n})

    def evaluate(
        self, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        inputs, targets = batch
        return {
            "loss": F.mse_loss(model(inputs).float(), targets, reduction="sum"),
            "count": torch.full((), targets.shape[0], device=targets.device),
        }

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        return {"loss": sums["loss"] / max(sums["count"], 1)}


def train_adder(
    cell: str,
    hidden: int,
    steps: int,
    length: int = 30,
    batch_size: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
    device: str = "auto",
) -> tuple[Adder, float]:
    """An :class:`Adder` trained ``steps`` Adam updates on sequences of ``length``, with the
    engine's ``fit`` (no run directory); returns it on the CPU and its validation MSE.

    The batches are made on the device ``fit`` trains on (``device``, resolved as the
    engine resolves it), and the validation MSE is measured there before the model comes
    back to the CPU. Always answering 1.0 scores MSE 1/6 (``AddingProblem.baseline_mse``).
    """
    if steps < 1:
        raise StriateError(f"training steps must be positive, got {steps}")
    where = resolve_device(device)
    torch.manual_seed(seed)
    model = Adder(cell, hidden)
    task = AddingProblem(length, batch_size, steps, seed=seed, device=where)
    config = EngineConfig(
        epochs=1,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        weight_decay=0.0,
        schedule="constant",
        clip_grad_norm=1.0,
        precision="fp32",
        device=str(where),
        seed=seed,
        log_every=max(steps, 1),
        progress=False,
    )
    fit(model, AddingStep(), task, None, config)
    model = model.to(where).eval()
    step = AddingStep()
    with torch.no_grad():
        sums = [step.evaluate(model, batch) for batch in task.validation(4).epoch(0)]
    total = {k: float(sum(s[k] for s in sums)) for k in ("loss", "count")}
    return model.cpu(), step.summarize(total)["loss"]


# ---------------------------------------------------------------------------------------------
# vanishing gradients


def _check_cells(cells: Sequence[str]) -> list[str]:
    cells = [c.strip() for c in cells if c.strip()]
    for cell in cells:
        if cell not in CELLS:
            raise StriateError(f"unknown recurrent cell {cell!r}; use one of {', '.join(CELLS)}")
    if len(set(cells)) != len(cells):
        raise StriateError("each cell may be named once")
    return cells


def held_out_text(run: str | Path, runs_dir: str | Path = DEFAULT_ROOT) -> str | None:
    """The held-out end of a text run's corpus, if its data is on this machine (never
    downloads); None otherwise."""
    run_path, _ = locate_checkpoint(run, runs_dir)
    found = RunDir(run_path)
    try:
        config = found.read_config() if found.config_file.is_file() else {}
        text = load_text(
            config.get("data", "python-stdlib"),
            config.get("data_dir"),
            download=False,
            max_chars=config.get("max_chars"),
        )
        _, held_out = split_text(text, config.get("val_fraction", 0.05))
        return held_out if len(held_out) > 1 else text
    except (StriateError, OSError, ValueError):
        return None


def _text_windows(
    model: CharRNN, vocab: Any, text: str | None, count: int, length: int, seed: int
) -> torch.Tensor:
    """``count`` windows of ``length`` character ids: from ``text`` where it is long enough
    and known to the vocabulary, otherwise from the model's own samples."""
    if text is not None:
        known = set(vocab.chars)
        text = "".join(ch for ch in text if ch in known)
    if text is None or len(text) < length + count:
        pieces = [
            "".join(generate(model, vocab, "\n", 1.0, None, length, seed + k)) for k in range(count)
        ]
        return torch.stack([vocab.encode(p) for p in pieces])
    ids = vocab.encode(text)
    starts = torch.linspace(0, len(ids) - length, count).long()
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


def _run_curve(
    run: str | Path, lag: int, batch: int, seed: int, runs_dir: str | Path
) -> tuple[str, GradientCurve, Path]:
    model, vocab, _ = load_text_model(run, runs_dir)
    run_path, _ = locate_checkpoint(run, runs_dir)
    ids = _text_windows(model, vocab, held_out_text(run, runs_dir), batch, lag + 2, seed)
    inputs = model.encode(ids[:, :-1]).detach()  # (B, lag + 1, I)
    readout = head_readout(
        model.head, lambda logits, y: F.cross_entropy(logits, y, reduction="none"), ids[:, -1]
    )
    curve = gradient_norms(model.rnn, inputs, readout, objective="cross-entropy")
    name = f"{model.rnn.cell} · run {run_path.name}"
    return name, curve, run_path


def vanishing_gradients(
    cells: Sequence[str] | None = None,
    lag: int = 300,
    hidden: int = 32,
    run: str | Path | None = None,
    train_on_adding: int | None = None,
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    batch: int = 16,
    adding_length: int = 30,
    seed: int = 0,
    device: str = "auto",
) -> tuple[Path, dict[str, GradientCurve]]:
    """Measure and plot ``||∂L_t/∂h_{t-lag}||`` for lags ``0..lag``; returns (PNG, curves).

    Args:
        cells: cell types to measure on one-layer models of ``hidden`` units (default
            rnn, lstm, gru without a run; none with one).
        lag: the longest lag; sequences are ``lag + 1`` steps long.
        run: a text-generation run whose trained model is measured too (its loss at the
            last character of held-out text, or of its own samples if the data is absent).
        train_on_adding: train each cell's model this many steps on the adding problem
            (sequences of ``adding_length``) first, and measure its own squared error;
            without it the layers are fresh and ``L_t`` is a fixed random projection of h_t.
        out: the PNG (default ``RUN/gradients.png``, or ``vanishing-gradients.png`` here);
            the numbers go beside it as JSON.
        batch: sequences averaged over.

    Every model is measured on the same inputs (adding-problem sequences of length
    ``lag + 1``, or the run's text).
    """
    if lag < 1:
        raise StriateError(f"the lag must be at least 1, got {lag}")
    if batch < 1 or hidden < 1:
        raise StriateError("batch and hidden size must be positive")
    if adding_length < 2:
        raise StriateError(f"the adding problem needs sequences of at least 2, got {adding_length}")
    chosen = _check_cells(("rnn", "lstm", "gru") if cells is None and run is None else cells or ())
    if not chosen and run is None:
        raise StriateError("name at least one cell or a run")
    if out is not None and Path(out).suffix.lower() != ".png":
        raise StriateError(f"the output is a PNG file, not {Path(out).name!r}")
    curves: dict[str, GradientCurve] = {}
    summary: dict[str, Any] = {"lag": lag, "batch": batch, "seed": seed}
    run_path = None
    if run is not None:
        name, curve, run_path = _run_curve(run, lag, batch, seed, runs_dir)
        curves[name] = curve
        summary["run"] = str(run_path)
    inputs, targets = AddingProblem(lag + 1, batch, 1, seed=seed + 1).batch(0, 0)
    val_mse: dict[str, float] = {}
    for cell in chosen:
        if train_on_adding:
            model, val_mse[cell] = train_adder(
                cell, hidden, train_on_adding, adding_length, seed=seed, device=device
            )
            readout = head_readout(model.out, lambda p, y: (p - y).pow(2), targets)
            curves[cell] = gradient_norms(model.rnn, inputs, readout, objective="squared error")
        else:
            torch.manual_seed(seed)
            curves[cell] = gradient_norms(Recurrent(cell, AddingProblem.input_size, hidden), inputs)
    if chosen:
        summary.update(hidden=hidden, trained_on_adding=train_on_adding or 0)
        if train_on_adding:
            summary.update(adding_length=adding_length, val_mse=val_mse)
    if out is None:
        out = run_path / "gradients.png" if run_path is not None else "vanishing-gradients.png"
    out = Path(out)
    how = (
        f"after {train_on_adding} adding-problem steps, L = squared error"
        if train_on_adding
        else "fresh layers, L = random projection of h_t"
    )
    title = f"gradient from the loss at t back to h(t − lag): {how}"
    if not chosen:
        title = "gradient from the loss at t back to h(t − lag), L = cross-entropy"
    plot_gradient_norms({k: c.norms.tolist() for k, c in curves.items()}, out, title)
    summary["curves"] = {k: c.to_json() for k, c in curves.items()}
    write_json(out.with_suffix(".json"), summary)
    return out, curves


# ---------------------------------------------------------------------------------------------
# gates


@dataclass
class GateActivity:
    """What :func:`gate_activity` found: the passage, the units, the HTML rows and a PNG."""

    text: str
    units: list[Unit]
    signals: tuple[str, ...]
    body: str  # HTML fragment: legend + one block of coloured rows per unit
    png: Path
    dropped: list[str]  # characters of the text that the vocabulary lacks (left out)


def _signal_row(trace: list, unit: Unit, signal: str, text: str) -> str:
    values = trace[unit.layer][signal][:, unit.index].tolist()
    if signal == "c":  # unbounded: coloured by tanh(C), the value h is made of
        colours = [math.tanh(v) for v in values]
        return html.text_heatmap(text, colours, "signed", values, "C (colour: tanh C)")
    scale = "unit" if signal in ("i", "f", "o") else "signed"
    return html.text_heatmap(text, values, scale, None, SIGNALS[signal])


def gate_activity(
    run: str | Path,
    text: str,
    units: Sequence[int] | None = None,
    layer: int | None = None,
    png: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    max_chars: int = 800,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    count: int = 6,
) -> GateActivity:
    """Trace a char-LSTM run over ``text`` and render chosen units (see :func:`gates`)."""
    for signal in signals:
        if signal not in SIGNALS:
            raise StriateError(f"unknown signal {signal!r}; use one of {', '.join(SIGNALS)}")
    if max_chars < 1:
        raise StriateError("max_chars must be positive")
    model, vocab, _ = load_text_model(run, runs_dir)
    if model.rnn.cell != "lstm":
        raise StriateError(f"gate activity needs a char-LSTM run; {run} is a {model.rnn.cell!r}")
    layers = model.rnn.num_layers
    if layer is not None and not 1 <= layer <= layers:
        raise StriateError(f"layer {layer} does not exist; the model has layers 1..{layers}")
    known = set(vocab.chars)
    dropped = sorted({ch for ch in text if ch not in known})
    text = "".join(ch for ch in text if ch in known)[:max_chars]
    if not text:
        raise StriateError("the text has no character the model knows")
    trace = trace_lstm(model, vocab.encode(text))
    if units:
        index = (layer or layers) - 1
        for unit in units:
            if not 0 <= unit < model.rnn.hidden_size:
                raise StriateError(
                    f"unit {unit} does not exist; layers have units 0..{model.rnn.hidden_size - 1}"
                )
        chosen = [Unit(index, u, "chosen") for u in units]
    else:
        chosen = pick_units(trace, text, count, None if layer is None else [layer - 1])
    blocks = [
        html.legend("signed", "C, h, C~:")
        + html.legend("unit", "gates i, f, o:")
        + '<p class="note">Hover over a character for its value.</p>'
    ]
    rows: list[tuple[str, list[float]]] = []
    for unit in chosen:
        heading = f"<h3>{html.escape(unit.label)} <small>— {html.escape(unit.reason)}</small></h3>"
        body = html.heat_grid([_signal_row(trace, unit, s, text) for s in signals])
        blocks.append(f'<div class="unit">{heading}{body}</div>')
        for s in signals:
            values = trace[unit.layer][s][:, unit.index]
            values = values.tanh() if s == "c" else values
            rows.append((f"L{unit.layer + 1} u{unit.index} {s}", values.tolist()))
    target = Path(png) if png is not None else locate_checkpoint(run, runs_dir)[0] / "gates.png"
    plot_unit_activity(rows, text, target, "unit activity (C as tanh C) over the first characters")
    return GateActivity(text, chosen, tuple(signals), "\n".join(blocks), target, dropped)


def gates(
    run: str | Path,
    text_file: str | Path,
    units: Sequence[int] | None = None,
    layer: int | None = None,
    out: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    max_chars: int = 800,
    signals: Sequence[str] = DEFAULT_SIGNALS,
) -> Path:
    """Colour a text by the cell states and gates of a char-LSTM run; returns the HTML path.

    Each chosen unit gets one row of the text per signal (default C, h and the gates i, f,
    o), each character's background its value, its tooltip the number. ``units`` (0-based
    indices) are read from ``layer`` (1-based; default the last); without ``units`` the
    units are picked automatically from ``layer`` (default all layers): those following
    the position in the line, bracket depth and quotes most closely, then the most variable.
    Writes ``out`` (default ``RUN/gates.html``) and a PNG heat map beside it (the same
    name, ``.png``); ``out`` must therefore end in ``.html`` or ``.htm``, or the two files
    would be one (``--out g.png`` wrote the HTML over the PNG). Characters the model's
    vocabulary lacks are left out (and listed); at most ``max_chars`` are used.
    """
    path = Path(text_file)
    if not path.is_file():
        raise StriateError(f"text file {text_file} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StriateError(f"text file {text_file} is not UTF-8 text") from None
    target = Path(out) if out is not None else locate_checkpoint(run, runs_dir)[0] / "gates.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise StriateError(
            f"--out names the HTML page, not {target.name!r}: use a name ending in .html "
            "(the PNG heat map is written beside it with .png)"
        )
    activity = gate_activity(
        run, text, units, layer, target.with_suffix(".png"), runs_dir, max_chars, signals
    )
    note = ""
    if activity.dropped:
        shown = " ".join(repr(ch) for ch in activity.dropped[:20])
        note = f'<p class="note">Left out (not in the vocabulary): {html.escape(shown)}</p>'
    body = (
        f"<h1>Gate and cell activity</h1>"
        f'<p class="note">run {html.escape(str(run))}, text {html.escape(path.name)}, '
        f"{len(activity.text)} characters</p>{note}\n{activity.body}"
    )
    return html.write_html(target, html.page(f"gates · {path.name}", body))


def describe_curves(curves: dict[str, GradientCurve], lags: Sequence[int]) -> list[str]:
    """A small text table of the curves at a few lags (for the command line)."""
    lags = [lag for lag in lags if all(lag <= c.max_lag for c in curves.values())]
    width = max(len(cell_label(k)) for k in curves)
    lines = [f"{'':<{width}}  " + "  ".join(f"{'lag ' + str(lag):>10}" for lag in lags)]
    for name, curve in curves.items():
        cells = "  ".join(f"{curve.at(lag):>10.2e}" for lag in lags)
        lines.append(f"{cell_label(name):<{width}}  {cells}")
    return lines
