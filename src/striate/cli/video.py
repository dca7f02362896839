"""``striate train video``, ``striate label-video`` and ``striate eval-video``.

Each command is one call of :mod:`striate.apps.video`::

    striate train video --data moving-digits --cell lstm --hidden 128 --epochs 4
    striate train video --data moving-digits --no-rnn      # the per-frame CNN baseline
    striate label-video RUN path/to/clip-folder            # a label per frame
    striate eval-video RUN --split test                    # per-frame and memory accuracy
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from striate.cli.common import (
    add_engine_args,
    add_eval_args,
    model_option,
    print_per_class,
    report_run,
    train_or_resume,
)


def _train_video(args: argparse.Namespace) -> int:
    from striate.apps.video import TASK

    return report_run(train_or_resume(TASK, args, encoder_options=dict(args.option or [])))


def _eval_video(args: argparse.Namespace) -> int:
    from striate.apps import video

    report = video.evaluate(
        args.run, args.split, args.data, args.data_dir, args.device, args.runs_dir
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['split']} split of {report['data']}: {report['clips']} clips, "
          f"{report['frames']} frames")  # fmt: skip
    print(f"  per-frame accuracy {report['accuracy']:.4f}   loss {report['loss']:.4f}")
    if report["memory_accuracy"] is not None:
        print(f"  memory frames ({report['memory_frames']}): accuracy "
              f"{report['memory_accuracy']:.4f}   visible frames: "
              f"{report['visible_accuracy']:.4f}")  # fmt: skip
    print_per_class(report["per_class_accuracy"])
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``train video``, ``label-video`` and ``eval-video``."""
    p = train_tasks.add_parser("video", help="train a frame-level video classifier (CNN + RNN)")
    p.add_argument("--data", default="moving-digits", help="moving-digits | folder:PATH")
    p.add_argument("--data-dir", help="where datasets live (MNIST for --digits mnist)")
    p.add_argument("--digits", default="digits", choices=["digits", "mnist"],
                   help="moving-digits: glyphs from the bundled digits or from MNIST")  # fmt: skip
    p.add_argument("--frames", type=int, default=16, help="moving-digits: frames per clip")
    p.add_argument("--clips", type=int, default=3000, help="moving-digits: training clips")
    p.add_argument("--val-clips", type=int, default=500, help="moving-digits: validation clips")
    p.add_argument("--test-clips", type=int, default=1000, help="moving-digits: test clips")
    p.add_argument("--image-size", type=int, help="frame side (default 32, folders: their own)")
    p.add_argument("--channels", type=int, choices=[1, 3], help="folders: 1 gray or 3 RGB")
    p.add_argument("--val-fraction", type=float, default=0.1, help="folders: clips held out")
    p.add_argument("--encoder", default="small", help="small | a registered model")
    p.add_argument("--option", type=model_option, action="append", help="encoder option K=V")
    p.add_argument("--cell", default="lstm", help="rnn | lstm | gru | gru_cudnn")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--bidirectional", action="store_true",
                   help="also read the clip backwards (offline labelling only)")  # fmt: skip
    p.add_argument("--no-rnn", action="store_true", help="per-frame CNN only (the baseline)")
    add_engine_args(p)
    p.set_defaults(func=_train_video)

    p = commands.add_parser("eval-video", help="per-frame, per-class and memory-frame accuracy")
    add_eval_args(p, data_help="other clips with the same labels")
    p.set_defaults(func=_eval_video)
