"""``striate train translate``, ``striate translate`` and ``striate eval-translate``.

Each command is one call of :mod:`striate.apps.translation`::

    striate train translate --data multi30k --src en --tgt de --attention bahdanau --epochs 10
    striate translate runs/seq2seq-en-de "A man is riding a bike." --beam 5
    striate translate runs/seq2seq-en-de --file sentences.txt > translations.txt
    striate eval-translate runs/seq2seq-en-de --split test --beam 5

``--file`` reads one sentence per line (``-``: standard input) and prints one translation
per line, a blank line for a blank one, so the output lines up with the input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from striate.cli.common import (
    add_engine_args,
    add_eval_args,
    report_run,
    train_or_resume,
)


def _train(args: argparse.Namespace) -> int:
    from striate.apps.translation import TASK

    return report_run(train_or_resume(TASK, args))


def _eval(args: argparse.Namespace) -> int:
    from striate.apps import translation as mt

    report = mt.evaluate(
        args.run, args.split, args.beam, args.length_penalty, args.data, args.data_dir,
        args.limit, args.device, args.runs_dir,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(
        f"{report['split']} split of {report['data']} ({report['src']}->{report['tgt']}): "
        f"{report['sentences']} sentences, beam {report['beam']}"
    )
    precisions = "/".join(f"{p:.1f}" for p in report["precisions"])
    print(f"  BLEU {report['bleu']:.2f}   ({precisions}, BP {report['brevity_penalty']:.3f})")
    print(f"  sacreBLEU {report['signature']}")
    print(f"  lower-cased BLEU {report['bleu_lowercase']:.2f}   ({report['signature_lowercase']})")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``train translate``, ``translate`` and ``eval-translate``."""
    p = train_tasks.add_parser("translate", help="train a recurrent encoder-decoder translator")
    p.add_argument("--data", default="multi30k", help="multi30k | tsv:PATH | FILE.tsv | FILE.txt")
    p.add_argument("--data-dir", help="where datasets live (default: $STRIATE_DATA or cache)")
    p.add_argument("--src", default="en", help="source language code (multi30k: en de fr cs)")
    p.add_argument("--tgt", default="de", help="target language code")
    p.add_argument("--columns", help="languages of a TSV file's two columns, e.g. en,de")
    p.add_argument("--val-fraction", type=float, default=0.05, help="TSV files: held-out share")
    p.add_argument("--limit", type=int, help="use only the first N training pairs")
    p.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, help="lower-case (default: no)"
    )
    p.add_argument("--min-freq", type=int, default=2, help="rarer words become <unk>")
    p.add_argument("--max-vocab", type=int, help="cap each vocabulary (special tokens included)")
    p.add_argument("--max-length", type=int, default=50, help="drop longer training pairs")
    p.add_argument("--cell", default="gru", help="rnn | lstm | gru | gru_cudnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding", type=int, default=256)
    p.add_argument("--attention", default="bahdanau", choices=["bahdanau", "luong", "none"])
    p.add_argument(
        "--bidirectional", action=argparse.BooleanOptionalAction, default=True,
        help="bidirectional encoder (default: on)",
    )  # fmt: skip
    p.add_argument(
        "--reverse-source", action="store_true", help="read the source backwards (Sutskever)"
    )
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--teacher-forcing", type=float, default=1.0, help="initial ratio")
    p.add_argument(
        "--teacher-forcing-schedule", default="constant",
        choices=["constant", "linear", "inverse_sigmoid", "exponential"],
    )  # fmt: skip
    p.add_argument("--teacher-forcing-end", type=float, default=0.5, help="final ratio")
    p.add_argument("--teacher-forcing-steps", type=int, default=0, help="0: the whole run")
    p.add_argument(
        "--val-bleu-samples", type=int, default=200, help="greedy BLEU per epoch (0: none)"
    )
    add_engine_args(p)
    p.set_defaults(func=_train)

    p = commands.add_parser("eval-translate", help="corpus BLEU of a translation run")
    add_eval_args(
        p, split_help="test | val | train | a Multi30k test set", any_split=True,
        data_help="default: the data the run was trained on",
    )  # fmt: skip
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--limit", type=int, help="only the first N sentences")
    p.set_defaults(func=_eval)
