"""``striate analyze gradients`` and ``striate analyze gates``: looking inside recurrent models.

Each command calls one function of :mod:`striate.apps.recurrent_analysis` and prints where
it wrote::

    striate analyze gradients --cells rnn,lstm,gru --lag 300 --train-steps 700
    striate analyze gradients RUN --lag 200           # a trained char model (and --cells ...)
    striate analyze gates RUN --text notes.txt [--units 3,17 --layer 1]
"""

from __future__ import annotations

import argparse
from typing import Any


def _int_list(text: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def _gradients(args: argparse.Namespace) -> int:
    from striate.apps import recurrent_analysis as ra

    cells = None if args.cells is None else args.cells.split(",")
    png, curves = ra.vanishing_gradients(
        cells, args.lag, args.hidden, args.run, args.train_steps, args.out, args.runs_dir,
        args.batch, args.adding_length, args.seed, args.device,
    )  # fmt: skip
    lags = sorted({0, 10, args.lag // 10, args.lag // 3, args.lag // 2, args.lag})
    print("\n".join(ra.describe_curves(curves, lags)))
    print(f"wrote {png} and {png.with_suffix('.json')}")
    return 0


def _gates(args: argparse.Namespace) -> int:
    from striate.apps import recurrent_analysis as ra

    path = ra.gates(
        args.run, args.text, args.units, args.layer, args.out, args.runs_dir, args.max_chars
    )
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``striate analyze gradients`` and ``striate analyze gates``."""
    p = analyses.add_parser(
        "gradients", help="vanishing gradients: ‖∂L_t/∂h_(t-lag)‖ against lag, per cell"
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="also measure a trained text run")
    p.add_argument(
        "--cells", help="comma-separated cells: rnn,lstm,gru,gru_cudnn (default rnn,lstm,gru "
        "without a RUN, none with one)",
    )  # fmt: skip
    p.add_argument("--lag", type=int, default=300, help="longest time lag (default 300)")
    p.add_argument("--hidden", type=int, default=32, help="units of the cells' models")
    p.add_argument(
        "--train-steps", type=int, help="first train each cell N steps on the adding problem"
    )
    p.add_argument("--adding-length", type=int, default=30, help="adding-problem length")
    p.add_argument("--batch", type=int, default=16, help="sequences averaged over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="where --train-steps trains")
    p.add_argument("--out", help="PNG to write (default RUN/gradients.png or ./vanishing-...)")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_gradients)

    p = analyses.add_parser("gates", help="colour a text by a char-LSTM's gates and cells")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text to read")
    p.add_argument("--units", type=_int_list, help="unit indices, e.g. 3,17 (default: picked)")
    p.add_argument("--layer", type=int, help="1-based layer (default: last, or all for picks)")
    p.add_argument("--max-chars", type=int, default=800, help="characters of the text used")
    p.add_argument(
        "--out", help="HTML to write, ending in .html (default RUN/gates.html); the PNG goes "
        "beside it with .png",
    )  # fmt: skip
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_gates)
