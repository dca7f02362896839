"""Pictures a person would rather look at than read: training curves, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from striate.artifacts.atomic import atomic_path


def _pyplot() -> Any:
    """matplotlib, imported on first use (it costs a third of a second) and without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return target


def plot_curves(records: Sequence[dict[str, Any]], target: Path) -> Path:
    """Loss (left) and accuracy (right) against step, training steps and validation epochs."""
    fig, (ax_loss, ax_acc) = _pyplot().subplots(1, 2, figsize=(10, 3.8))
    for phase, style in (("train", "-"), ("val", "o-")):
        rows = [r for r in records if r.get("phase") == phase]
        steps = [r["step"] for r in rows]
        if rows and "loss" in rows[0]:
            ax_loss.plot(steps, [r["loss"] for r in rows], style, label=phase, markersize=4)
        if rows and "accuracy" in rows[0]:
            ax_acc.plot(steps, [r["accuracy"] for r in rows], style, label=phase, markersize=4)
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    return _save(fig, target)


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], target: Path) -> Path:
    """Confusion matrix, rows = true class, columns = predicted, cells show counts."""
    n = len(classes)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = _pyplot().subplots(figsize=(side, side))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if n <= 20:
        peak = max(int(matrix.max()), 1)
        for i in range(n):
            for j in range(n):
                value = int(matrix[i, j])
                color = "white" if value > peak / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    return _save(fig, target)
