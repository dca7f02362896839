"""Pictures of recurrent models: gradient norm against time lag, unit activity over a text,
and any run's logged metrics against step.

Drawn with the lazy, display-free matplotlib and the atomic PNG writer of
:mod:`striate.artifacts.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from striate.artifacts.plots import _pyplot, _save

__all__ = ["cell_label", "plot_gradient_norms", "plot_metric_curves", "plot_unit_activity"]

_CELL_NAMES = {"rnn": "simple RNN", "lstm": "LSTM", "gru": "GRU", "gru_cudnn": "GRU (cuDNN)"}
_CELL_COLOURS = {"rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c", "gru_cudnn": "#17becf"}
_SKIP = {"step", "epoch", "phase", "lr", "samples_per_s"}


def cell_label(name: str) -> str:
    """ "lstm" -> "LSTM"; other labels pass through."""
    return _CELL_NAMES.get(name, name)


def plot_gradient_norms(
    curves: Mapping[str, Sequence[float]],
    target: Path,
    title: str = "gradient of the loss at t with respect to h(t - lag)",
) -> Path:
    """``||∂L_t/∂h_{t-lag}||`` against lag, one line per curve, on a log y-scale.

    Keys that name a cell (``rnn``, ``lstm``, ``gru``) get its usual name and colour; zeros
    (underflow) are left out of a line rather than drawn at the bottom.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for name, norms in curves.items():
        points = [(lag, float(v)) for lag, v in enumerate(norms) if float(v) > 0]
        if not points:
            continue
        lags, values = zip(*points, strict=True)
        key = name.split()[0]
        ax.plot(lags, values, label=cell_label(name), color=_CELL_COLOURS.get(key), linewidth=1.8)
    ax.set_yscale("log")
    ax.set(
        xlabel="time lag (steps back from t)",
        ylabel=r"mean $\|\partial L_t\, /\, \partial h_{t-\mathrm{lag}}\|$",
        title=title,
    )
    ax.grid(alpha=0.3, which="major")
    if ax.lines:
        ax.legend()
    return _save(fig, target)


def plot_unit_activity(
    rows: Sequence[tuple[str, Sequence[float]]],
    text: str,
    target: Path,
    title: str = "unit activity over the text",
    max_chars: int = 120,
) -> Path:
    """A heat map: one row per (unit, signal), one column per character of ``text``.

    Values are drawn on -1..1 (blue-white-red), which holds h, tanh(C), the candidate and
    the gates (0..1). At most ``max_chars`` characters are shown, each under its column.
    """
    import numpy as np

    plt = _pyplot()
    shown = text[:max_chars]
    matrix = np.array([[float(v) for v in values[: len(shown)]] for _, values in rows])
    width = min(20.0, max(6.0, 0.13 * len(shown) + 2.5))
    fig, ax = plt.subplots(figsize=(width, 0.32 * len(rows) + 1.6))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="none")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    visible = [{"\n": "↵", "\t": "→", " ": "␣"}.get(ch, ch) for ch in shown]
    ax.set_xticks(range(len(shown)), visible, fontsize=7, family="monospace")
    ax.tick_params(axis="x", length=0)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.015, pad=0.01)
    return _save(fig, target)


def plot_metric_curves(records: Sequence[dict[str, Any]], target: Path) -> Path:
    """Every numeric metric of a run's log against step (train lines, validation dots)."""
    names: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in _SKIP and key not in names and isinstance(value, int | float):
                names.append(key)
    names = names[:6] or ["loss"]
    plt = _pyplot()
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for phase, style in (("train", "-"), ("val", "o-")):
            points = [
                (r["step"], r[name])
                for r in records
                if r.get("phase") == phase and isinstance(r.get(name), int | float) and "step" in r
            ]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, label=phase, markersize=4)
        ax.set(xlabel="step", title=name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, target)
