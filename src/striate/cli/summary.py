"""``striate summary MODEL|RUN``: per layer output shape, parameters, multiply-adds and
receptive field, with totals (see :mod:`striate.apps.model_summary`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _sizes(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        message = f"input size {text!r} is not integers like 3,224"
        raise argparse.ArgumentTypeError(message) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"input size {text!r} must be positive integers")
    return values


def _summary(args: argparse.Namespace) -> int:
    from striate.analysis.summary import format_summary
    from striate.apps.model_summary import model_summary, summary_dict

    summary, title = model_summary(args.model, args.input_size, args.runs_dir)
    if args.json:
        print(json.dumps(summary_dict(summary, title)))
    else:
        print(format_summary(summary, title))
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    p = commands.add_parser(
        "summary", help="per layer: output shape, parameters, multiply-adds, receptive field"
    )
    p.add_argument("model", metavar="MODEL|RUN", help="a registered model or a run of any task")
    p.add_argument(
        "--input-size",
        type=_sizes,
        help="images: S or C,S; sequence models: the length T; video: the frames T",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_summary)
