"""``striate train caption``, ``striate caption`` and ``striate eval-caption``.

Each command is one call of :mod:`striate.apps.captioning`::

    striate train caption --data shapes --attention --epochs 5
    striate train caption --data flickr8k:Flickr8k.token.txt --encoder-run runs/resnet18-cifar10 \\
        --freeze-encoder
    striate caption runs/caption-attend-shapes scene.png --beam 3
    striate caption runs/caption-attend-shapes scene.png --attention-map
    striate eval-caption runs/caption-attend-shapes --split test
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from striate.cli.common import (
    add_engine_args,
    add_eval_args,
    model_option,
    report_run,
    train_or_resume,
)


def _report(result: Any) -> int:
    report_run(result)
    if result.bleu:
        scores = "  ".join(f"BLEU-{n} {result.bleu[f'bleu{n}']:.1f}" for n in range(1, 5))
        print(f"validation captions: {scores}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from striate.apps.captioning import TASK

    return _report(train_or_resume(TASK, args, encoder_options=dict(args.encoder_option or [])))


def _eval(args: argparse.Namespace) -> int:
    from striate.apps import captioning as cap

    report = cap.evaluate(
        args.run, args.split, args.beam, args.data, args.data_dir, args.device, args.runs_dir
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['split']} split of {report['data']}: {report['images']} images, beam {args.beam}"
    )
    print("  " + "   ".join(f"BLEU-{n} {report[f'bleu{n}']:.2f}" for n in range(1, 5)))
    for example in report["examples"]:
        print(f"  {example['image']}: {example['caption']}")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``train caption``, ``caption`` and ``eval-caption``."""
    p = train_tasks.add_parser("caption", help="train an image captioner (CNN + LSTM)")
    p.add_argument(
        "--data",
        default="shapes",
        help="shapes | shapes:N | coco:ANNOTATIONS_JSON[,IMAGES_DIR] | "
        "flickr8k:TOKEN_FILE[,IMAGES_DIR]",
    )
    p.add_argument("--data-dir", help="where relative annotation/image paths are looked up")
    p.add_argument("--image-size", type=int, help="square input side (shapes 32, files 64)")
    p.add_argument("--encoder", default="neocognitron", help="a registered CNN (striate models)")
    p.add_argument(
        "--encoder-option", type=model_option, action="append", help="encoder option KEY=VALUE"
    )
    p.add_argument("--encoder-run", metavar="RUN", help="the CNN of a trained image classifier")
    p.add_argument(
        "--freeze-encoder", action="store_true", help="keep --encoder-run's weights fixed"
    )
    p.add_argument(
        "--attention",
        nargs="?",
        const="additive",
        choices=["additive", "multiplicative"],
        help="Show, Attend and Tell: attend over the feature map (default kind: additive)",
    )
    p.add_argument("--cell", default="lstm", choices=["lstm", "gru", "gru_cudnn", "rnn"])
    p.add_argument("--embedding", type=int, default=64, help="word and image embedding size")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--min-freq", type=int, default=1, help="rarer words become <unk>")
    p.add_argument("--max-vocab", type=int, help="cap the vocabulary (special tokens included)")
    p.add_argument("--max-len", type=int, default=30, help="words per caption (train, generate)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out for file sources")
    p.add_argument("--limit", type=int, help="train on N (shuffled) images")
    p.add_argument("--beam", type=int, default=3, help="beam width of the final validation BLEU")
    add_engine_args(p)
    p.set_defaults(func=_train)

    p = commands.add_parser("eval-caption", help="BLEU-1..4 of a captioning run on a split")
    add_eval_args(p, data_help="another caption source (default: the run's)")
    p.add_argument("--beam", type=int, default=3)
    p.set_defaults(func=_eval)
