"""``striate train sentiment``, ``striate predict-sentiment`` and ``striate eval-sentiment``.

Each command is one call of :mod:`striate.apps.sentiment`::

    striate train sentiment --data sst2 --cell lstm --bidirectional --pooling max --epochs 3
    striate predict-sentiment runs/bilstm-sst2 "a gripping film" "dull and overlong"
    striate predict-sentiment runs/bilstm-sst2 --file reviews.txt --json
    striate eval-sentiment runs/bilstm-sst2 --split test
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from striate.cli.common import (
    add_engine_args,
    add_eval_args,
    print_per_class,
    report_run,
    train_or_resume,
)


def _train(args: argparse.Namespace) -> int:
    from striate.apps.sentiment import TASK

    return report_run(train_or_resume(TASK, args))


def _eval(args: argparse.Namespace) -> int:
    from striate.apps import sentiment as sa

    report = sa.evaluate(args.run, args.split, args.data, args.data_dir, args.device, args.runs_dir)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['split']} split of {report['data']}: {report['samples']} texts")
    print(f"  accuracy {report['accuracy']:.4f}   macro F1 {report['macro_f1']:.4f}")
    print_per_class(report["per_class_f1"], "F1 ")
    print(f"confusion matrix: {report['confusion_png']}")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``train sentiment``, ``predict-sentiment`` and ``eval-sentiment``."""
    p = train_tasks.add_parser("sentiment", help="train a recurrent sentence classifier")
    p.add_argument(
        "--data",
        default="sst2",
        help="sst2 | polarity | movie-reviews | uci | imdb | csv:PATH | tsv:PATH",
    )
    p.add_argument("--data-dir", help="where datasets live (default: $STRIATE_DATA or cache)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out where not official")
    p.add_argument("--test-fraction", type=float, default=0.1, help="held out where not official")
    p.add_argument("--limit", type=int, help="train on N (shuffled) training texts")
    p.add_argument("--cell", default="lstm", help="rnn | lstm | gru | gru_cudnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding", type=int, default=128, help="word vector size")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--pooling", default="last", choices=["last", "mean", "max"])
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--min-freq", type=int, default=2, help="rarer words become <unk>")
    p.add_argument("--max-vocab", type=int, help="cap the vocabulary (special tokens included)")
    p.add_argument("--max-length", type=int, default=400, help="keep a text's first N tokens")
    p.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, help="lower-case (default: yes)"
    )
    add_engine_args(p)
    p.set_defaults(func=_train)

    p = commands.add_parser(
        "eval-sentiment", help="accuracy, macro F1, per-class F1 and confusion on a split"
    )
    add_eval_args(p)
    p.set_defaults(func=_eval)
