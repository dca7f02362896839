"""``striate <command>``: a thin map from the command line onto documented Python functions.

Every command parses its flags, calls one function of ``striate.apps`` (or the registries)
and prints the result. A :class:`~striate.errors.StriateError` becomes one line on stderr
and exit code 2; Ctrl-C during training saves a checkpoint and exits with 130. What the
machine refuses (a full disk, no permission, a file where a run keeps a folder, memory that
cannot be had) is one line and exit code 1: every file striate writes is written atomically,
so nothing is left half-written. A reader that goes away (``striate sample ... | head``)
ends the command quietly. ``STRIATE_DEBUG=1`` shows the traceback of either instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from striate.cli.common import (
    Parser,
    add_engine_args,
    add_eval_args,
    model_option,
    print_per_class,
    report_run,
    train_or_resume,
)
from striate.cli.values import check_values
from striate.cli.weights import add_weights_args
from striate.errors import StriateError

# modules that add further commands through ``register(commands, train_tasks, analyses)``
COMMAND_MODULES: tuple[str, ...] = tuple(
    f"striate.cli.{name}"
    for name in (
        "predict",
        "serve",
        "sentiment",
        "translation",
        "captioning",
        "video",
        "analyze_images",
        "analyze_recurrent",
        "report",
        "weights",
        "summary",
        "export",
    )
)


# ---------------------------------------------------------------------------------------------
# commands


def _train_image(args: argparse.Namespace) -> int:
    from striate.apps.image_classification import TASK

    options = {"augment": args.augment or "", "model_options": dict(args.option or [])}
    return report_run(train_or_resume(TASK, args, **options))


def _train_text(args: argparse.Namespace) -> int:
    from striate.apps.text_generation import TASK

    return report_run(train_or_resume(TASK, args))


def _eval(args: argparse.Namespace) -> int:
    """``striate eval RUN``: the ``evaluate`` of the registered task whose kind the run's
    checkpoint carries, on its default split unless ``--split`` names another."""
    from striate.apps._runs import run_kind
    from striate.apps._task import task_for
    from striate.apps.image_classification import KIND as IMAGE_KIND

    kind = run_kind(args.run, args.runs_dir)
    task = task_for(kind)
    report = task.evaluate(
        args.run, args.split or task.eval_split, data=args.data, data_dir=args.data_dir,
        device=args.device, runs_dir=args.runs_dir,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report))
    elif kind == IMAGE_KIND:  # the classifier's table: top-5, per class, the confusion picture
        _print_image_report(report)
    else:  # every other task: its scalar metrics
        print(f"{report.get('split')} split of {report.get('data')} ({kind} run)")
        for key, value in report.items():
            if isinstance(value, float):
                print(f"  {key:<16} {value:.4f}")
            elif key.startswith("signature"):  # what a BLEU figure was computed with
                print(f"  {key:<16} {value}")
    return 0


def _print_image_report(report: dict[str, Any]) -> None:
    print(f"{report['split']} split of {report['data']}: {report['samples']} images")
    acc, top5, loss = report["accuracy"], report["top5"], report["loss"]
    print(f"  accuracy {acc:.4f}   top-5 {top5:.4f}   loss {loss:.4f}")
    print_per_class(report["per_class_accuracy"])
    print(f"confusion matrix: {report['confusion_png']}")


def _analyze_receptive_field(args: argparse.Namespace) -> int:
    from striate.analysis.receptive_field import format_table
    from striate.apps.analysis import receptive_field_table

    print(format_table(receptive_field_table(args.model, args.image_size, args.runs_dir)))
    return 0


def _models(args: argparse.Namespace) -> int:
    import torch

    from striate.models import count_parameters, create_model, get_model_spec, list_models

    names = list_models(args.pattern)
    if not names:
        raise StriateError(f"no model matches {args.pattern!r}")
    print(f"{'model':<16} {'input':>6} {'params (10 classes)':>20}  description")
    for name in names:
        spec = get_model_spec(name)
        with torch.device("meta"):  # shapes only: counting allocates and initializes nothing
            params = count_parameters(create_model(name, 10, 3, spec.image_size))
        print(f"{name:<16} {spec.image_size:>5}px {params:>20,}  {spec.description}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from striate.data.sources.images import describe_sources
    from striate.data.sources.parallel import describe_parallel_sources
    from striate.data.sources.sentiment import describe_sentiment_sources
    from striate.data.sources.text import describe_text_sources

    rows = [
        *describe_sources(args.data_dir),
        *describe_text_sources(args.data_dir),
        *describe_sentiment_sources(args.data_dir),
        *describe_parallel_sources(args.data_dir),
    ]
    for row in rows:
        state = {True: "present", False: "not downloaded", None: "-"}[row.get("present")]
        print(f"{row['name']:<14} {state:<15} {row.get('where', '')}  {row.get('description', '')}")
    return 0


# ---------------------------------------------------------------------------------------------
# the parser


def _add_train_text(sub: Any) -> None:
    p = sub.add_parser("text", help="train a character-level RNN language model")
    p.add_argument("--data", default="python-stdlib", help="python-stdlib | shakespeare | FILE")
    p.add_argument("--data-dir", help="where datasets live (default: $STRIATE_DATA or cache)")
    p.add_argument("--max-chars", type=int, help="use only the first N characters")
    p.add_argument("--cell", default="lstm", help="rnn | lstm | gru | gru_cudnn")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--embedding", type=int, help="learned embedding size instead of one-hot")
    p.add_argument("--tbptt", default="100", help="K, or K1,K2: update every K1, backprop K2")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--sample-every", type=int, default=200, help="steps between samples (0: none)")
    add_engine_args(p)
    p.set_defaults(func=_train_text)


def _add_train_image(sub: Any) -> None:
    p = sub.add_parser("image", help="train an image classifier")
    p.add_argument("--model", default="lenet5", help="a registered model (see `striate models`)")
    p.add_argument(
        "--data", default="digits", help="digits | mnist | fashion-mnist | cifar10 | folder:PATH"
    )
    p.add_argument(
        "--data-dir", help="where datasets live (default: $STRIATE_DATA or the user cache)"
    )
    p.add_argument("--image-size", type=int, help="square input side (default: data's, or model's)")
    p.add_argument("--augment", help="e.g. rotate,shift,flip,crop,color or rotate=20,shift=0.15")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument(
        "--validate-on",
        choices=["val", "test"],
        default="val",
        help="the split reported each epoch (test: --val-fraction may be 0)",
    )
    p.add_argument("--limit", type=int, help="train on the first N (shuffled) images")
    p.add_argument("--workers", type=int, default=2, help="loader processes for streamed folders")
    p.add_argument("--option", type=model_option, action="append", help="model option KEY=VALUE")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    add_weights_args(p)
    add_engine_args(p)
    p.set_defaults(func=_train_image)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="striate", description="CNNs and RNNs on PyTorch, as in the lecture.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train a model")
    tasks = train.add_subparsers(dest="task", required=True, parser_class=Parser)
    _add_train_image(tasks)
    _add_train_text(tasks)

    p = commands.add_parser("eval", help="evaluate a run of any task on a split or other data")
    add_eval_args(
        p, None, "default: test (text runs: val)",
        data_help="another source with the same classes (text runs: a FILE)",
    )  # fmt: skip
    p.set_defaults(func=_eval)

    analyze = commands.add_parser("analyze", help="look inside a model or a run")
    analyses = analyze.add_subparsers(dest="analysis", required=True, parser_class=Parser)
    p = analyses.add_parser("receptive-field", help="receptive field, jump and start per layer")
    p.add_argument("model", metavar="MODEL|RUN", help="a registered model or a trained run")
    p.add_argument("--image-size", type=int, help="input side (default: the model's or run's)")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_analyze_receptive_field)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, tasks, analyses)

    p = commands.add_parser("models", help="list registered models with parameter counts")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=_models)

    p = commands.add_parser("data", help="list data sources and what is present locally")
    p.add_argument("--data-dir")
    p.set_defaults(func=_data)
    check_values(parser)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush to a closed pipe does
    not print an error of its own on the way out."""
    with contextlib.suppress(OSError, ValueError):  # no file behind stdout: nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _machine_refusal(exc: BaseException) -> str | None:
    """One line for an error of the machine rather than of striate; None for anything else
    (a bug, whose traceback is worth seeing)."""
    if isinstance(exc, OSError):
        where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name)
        return f"{exc.strerror or exc}: {where}" if where else str(exc.strerror or exc)
    text = str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in text or "allocate memory" in text:
        first = " ".join(text.split("\n")[0].split())
        first = re.sub(r"^\[enforce fail at [^\]]*\] (err == 0\. )?", "", first)  # c10's prefix
        return (
            f"out of memory ({first or type(exc).__name__}): ask for less "
            "(a smaller batch, model, image size or data set)"
        )
    return None


def _usable_streams() -> None:
    """Make stdout and stderr safe to print to: a stream the shell closed (``>&-``) becomes
    os.devnull, so output is dropped rather than failing with an AttributeError, and a
    character the terminal's encoding cannot show (the bars of ``classify``, "café" under
    ``PYTHONIOENCODING=ascii``) is written as a backslash escape instead of failing the
    command after it has done its work."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        stream = getattr(sys, name)
        if callable(getattr(stream, "reconfigure", None)):
            with contextlib.suppress(OSError, ValueError, TypeError):
                stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _usable_streams()
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except StriateError as exc:
        print(f"striate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("striate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout has gone: not an error of the command
        _quiet_stdout()
        return 141  # as a shell reports a process ended by SIGPIPE
    except (OSError, MemoryError, RuntimeError) as exc:
        line = _machine_refusal(exc)
        if line is None or os.environ.get("STRIATE_DEBUG"):
            raise
        print(f"striate: error: {line}", file=sys.stderr)
        return 1
    finally:
        if "torch" in sys.modules:  # leave a torchrun process group cleanly
            from striate.engine.distributed import shutdown_distributed

            shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
