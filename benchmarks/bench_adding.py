"""The vanishing-gradient point as a measured table: the adding problem per cell type (CPU).

Hochreiter & Schmidhuber's adding problem (``AddingProblem``): read a (B, T, 2) sequence of
numbers and markers, output the sum of the two marked numbers; the first marker lies in the
first 10% of the sequence, so it must be remembered for >= 0.9 T steps. Always answering 1.0
scores MSE 1/6 = 0.167. A 1-layer striate ``Recurrent`` with 128 units per cell type (simple
RNN, LSTM, lecture GRU) and a Linear read-out of the last hidden state, trained with MSE,
Adam and gradient clipping by norm 1.0 for the same number of steps on the same batches;
the table is the final validation MSE per cell. The gated cells should fall far below the
baseline; the simple RNN, whose gradient through ~100 tanh steps vanishes, should not.
One JSON line. ``--quick``: 20 steps per cell, a smoke run, not the result.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import emit, environment, row
from striate.data.sources.memory_tasks import AddingProblem
from striate.nn.recurrent import Recurrent

CELLS = ("rnn", "lstm", "gru")
HIDDEN, BATCH, LR, CLIP = 128, 64, 1e-2, 1.0
LEARNT = 0.1  # "far below the baseline": under a tenth of 1/6


class Adder(nn.Module):
    """(B, T, 2) -> Recurrent -> last hidden state -> Linear -> (B, 1)."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = Recurrent(cell, AddingProblem.input_size, HIDDEN, impl="fast")
        self.out = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)
        return self.out(outputs[:, -1])


def validate(model: nn.Module, task: AddingProblem) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(F.mse_loss(model(x), y)) for x, y in task.epoch(0)]
    model.train()
    return sum(losses) / len(losses)


def train(cell: str, lag: int, steps: int, seed: int = 0) -> dict[str, float]:
    """``steps`` Adam updates on fresh batches; validation MSE at the end (and half-way)."""
    torch.manual_seed(seed)
    model = Adder(cell)
    opt = torch.optim.Adam(model.parameters(), LR)
    task = AddingProblem(lag, BATCH, steps, seed=seed)
    val = task.validation(8)
    start, halfway = time.perf_counter(), float("nan")
    for index, (x, y) in enumerate(task.epoch(0)):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        if index + 1 == steps // 2:
            halfway = validate(model, val)
    final = validate(model, val)
    return {
        "val_mse": final,
        "val_mse_halfway": halfway,
        "of_baseline": final / AddingProblem.baseline_mse,
        "learnt": final < LEARNT * AddingProblem.baseline_mse,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 steps per cell")
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps per cell and lag")
    parser.add_argument("--lags", default="100", help="comma-separated sequence lengths")
    args = parser.parse_args()
    steps = 20 if args.quick else args.steps
    lags = [int(v) for v in args.lags.split(",")]
    wall = time.perf_counter()
    table = {f"lag_{lag}": {cell: train(cell, lag, steps) for cell in CELLS} for lag in lags}
    expected = {
        name: all(row[c]["learnt"] for c in ("lstm", "gru")) and not row["rnn"]["learnt"]
        for name, row in table.items()
    }
    rows = [
        row(
            f"adding problem, lag {lag}, {cell.upper()} ({HIDDEN} units, {steps} steps): "
            "validation MSE",
            result["val_mse"],
            contender=f"always guessing the mean: {AddingProblem.baseline_mse:.3f}",
        )
        for lag in lags
        for cell, result in table[f"lag_{lag}"].items()
    ]
    emit(
        {
            "bench": "adding",
            "rows": rows,
            "quick": args.quick,
            "config": {"hidden": HIDDEN, "batch": BATCH, "lr": LR, "clip": CLIP, "steps": steps},
            "baseline_mse": AddingProblem.baseline_mse,
            "learnt_means_below": LEARNT * AddingProblem.baseline_mse,
            "table": table,
            "gated_learn_simple_does_not": expected,
            "wall_s": time.perf_counter() - wall,
            "env": environment(),
        }
    )


if __name__ == "__main__":
    main()
