"""What every ``striate`` command module shares: the parser class, the engine and evaluation
flags, the config built from the flags, the report and reading inputs from a file (the kind
of every value a command takes is :mod:`striate.cli.values`).

A command module (``striate.cli.<task>``) has one public function,
``register(commands, train_tasks, analyses)``, that adds its subcommands to the three
argparse sub-command groups: top-level commands, ``striate train <task>`` and
``striate analyze <analysis>``. :mod:`striate.cli.main` calls every module's ``register``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any, NoReturn

from striate.errors import StriateError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other error, and a
    command's options may stand anywhere between its positional arguments
    (``striate translate RUN --beam 2 "a man rides"``), as people type them."""

    _intermixed = False  # set while parse_known_intermixed_args runs its two passes

    def error(self, message: str) -> NoReturn:
        raise StriateError(f"{self.prog}: {message} (see --help)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """A command (a parser without sub-commands) parses its arguments intermixed: options
        first, then the positionals from what is left; a parser with sub-commands hands the
        rest to the sub-command as argparse does (intermixed parsing refuses sub-commands)."""
        if self._intermixed or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


def engine_config(args: argparse.Namespace, defaults: Any) -> Any:
    """The engine settings: a task's defaults, overridden by every flag that was given."""
    given = {f.name: getattr(args, f.name) for f in fields(defaults) if hasattr(args, f.name)}
    given = {k: v for k, v in given.items() if v is not None}
    return replace(defaults, **given, progress=not args.no_progress)


def task_config(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """A task's config dataclass ``cls`` (a ``TaskConfig``) from the parsed command line.

    A ``striate train`` command names its flags after the config's fields (``--max-vocab``
    sets ``max_vocab``), so every field but ``engine`` is taken from the flag of that name;
    a flag that was not given (``None``) leaves the field's default. ``values`` set the
    fields whose flag has another name or needs converting (``encoder_options``)
    and win over a flag of the same name. ``engine`` is :func:`engine_config` of the flags
    over the task's recipe (``cls.default_engine()``).
    """
    given = {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if f.name != "engine" and getattr(args, f.name, None) is not None
    }
    return cls(**{**given, **values}, engine=engine_config(args, cls.default_engine()))


def train_or_resume(task: Any, args: argparse.Namespace, **values: Any) -> Any:
    """A ``striate train`` command for ``task`` (an app's ``TASK``): resume the ``--resume``
    run (the flags of :func:`resume_overrides` override its saved settings), else train the
    config that :func:`task_config` builds from the task's config class, the flags and
    ``values``.
    """
    if args.resume is not None:  # --resume '' is refused, not a new run
        refuse_changes_on_resume(args)
        return task.resume(args.resume, args.runs_dir, **resume_overrides(args))
    return task.train(task_config(task.config, args, **values))


def read_lines(file: str, what: str = "text", keep_blank: bool = False) -> list[str]:
    """The lines of the UTF-8 file ``file`` (read by :func:`striate.data.sources.text.
    read_text_file`, with its one-line errors; ``-``: standard input).

    ``keep_blank=False``: the stripped non-blank lines, one text each. ``keep_blank=True``:
    every line, blank ones included, unstripped (a final newline adds no empty line), so an
    output can line up with the input line by line. ``what`` names one line in the error for
    input without a non-blank line ("standard input holds no sentences").
    """
    from striate.data.sources.text import read_text_file

    content = read_stdin_text() if file == "-" else read_text_file(file)
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise StriateError(f"{'standard input' if file == '-' else file} holds no {what}s")
    return lines if keep_blank else texts


def read_stdin_text() -> str:
    """All of standard input as text, checked as a file is (binary or non-UTF-8 input is a
    one-line error rather than garbage predictions); a closed stdin (``<&-``) is one line
    too, not an AttributeError."""
    from striate.data.sources.text import decode_utf8_text

    stream = sys.stdin
    if stream is None:
        raise StriateError("standard input is closed")
    try:
        buffer = getattr(stream, "buffer", None)
        data = buffer.read() if buffer is not None else stream.read()
    except (OSError, ValueError) as exc:  # a closed descriptor, or a stream closed in Python
        raise StriateError(f"cannot read standard input: {exc}") from None
    if isinstance(data, str):  # a text stream without bytes behind it (a test's StringIO)
        data = data.encode("utf-8", "surrogateescape")
    return decode_utf8_text(data, "standard input")


# what a resumed run may be given: a new length, where it runs, and how it reports
_RESUME_FLAGS = {"resume", "runs_dir", "epochs", "max_steps", "time_budget", "device"}
_RESUME_FLAGS |= {"checkpoint_every", "checkpoint_minutes", "no_progress"}


def refuse_changes_on_resume(args: argparse.Namespace) -> None:
    """One line naming every other flag given with ``--resume``: a resumed run keeps its own
    model, data and recipe, so a changed ``--model`` or ``--lr`` would otherwise be ignored
    without a word."""
    parser = args.train_parser
    defaults = vars(parser.parse_args([]))
    changed = [
        "--" + dest.replace("_", "-")
        for dest, value in vars(args).items()
        if dest in defaults and dest not in _RESUME_FLAGS and value != defaults[dest]
    ]
    if changed:
        allowed = ", ".join("--" + d.replace("_", "-") for d in sorted(_RESUME_FLAGS - {"resume"}))
        raise StriateError(
            f"a resumed run keeps its settings: {', '.join(changed)} cannot change with "
            f"--resume (it takes {allowed})"
        )


def resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "device": args.device,
        "time_budget": args.time_budget,
        "checkpoint_every": getattr(args, "checkpoint_every", None),
        "checkpoint_minutes": getattr(args, "checkpoint_minutes", None),
    }
    if args.no_progress:
        overrides["progress"] = False
    return overrides


def report_run(result: Any) -> int:
    if result.run is not None:
        final = ", ".join(f"{k} {v:.4f}" for k, v in result.fit.final.items())
        print(f"run: {result.run}  (step {result.fit.step}{'; val ' + final if final else ''})")
    return 0


def print_per_class(scores: dict[str, float], label: str = "") -> None:
    """An evaluation's per-class scores, one indented line each, the class names aligned."""
    width = max(len(name) for name in scores)
    for name, score in scores.items():
        print(f"  {name:<{width}}  {label}{score:.4f}")


def model_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"model option {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


_UNITS = {"s": 1 / 60, "m": 1.0, "h": 60.0}


class _CheckpointEvery(argparse.Action):
    """``--checkpoint-every 500`` (steps) or ``10m`` / ``90s`` / ``1h`` (time; ``0m``: no
    timer); the two kinds can be given side by side."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        text = str(value).strip().lower()
        try:
            if text[-1:] in _UNITS:
                minutes = float(text[:-1]) * _UNITS[text[-1]]
                if not (minutes >= 0 and minutes != float("inf")):
                    raise ValueError
                namespace.checkpoint_minutes = minutes
            else:
                steps = int(text)
                if steps < 0:
                    raise ValueError
                namespace.checkpoint_every = steps
        except ValueError:
            raise argparse.ArgumentError(
                self, f"{value!r} is neither a step count (500) nor a time (10m, 90s, 1h)"
            ) from None


def add_eval_args(
    p: argparse.ArgumentParser,
    split: str | None = "test",
    split_help: str | None = None,
    any_split: bool = False,
    data_help: str = "another source with the same classes",
) -> None:
    """The flags every evaluation command takes: the run, ``--split`` (train, val or test;
    ``any_split``: any name the data source knows), ``--data`` (another source to measure
    on), ``--data-dir``, ``--device``, ``--runs-dir`` and ``--json`` (the report as one JSON
    document)."""
    p.add_argument("run", help="RUN (its best checkpoint, else latest), RUN@latest, RUN@step-N")
    choices = None if any_split else ["train", "val", "test"]
    p.add_argument("--split", default=split, choices=choices, help=split_help)
    p.add_argument("--data", help=data_help)
    p.add_argument("--data-dir")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """The training loop's flags, shared by every ``striate train`` task."""
    p.set_defaults(train_parser=p)  # what a resume compares the flags with
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle"])
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--step-every-epochs", type=int, help="the step schedule's interval")
    p.add_argument("--gamma", type=float, help="the step schedule's factor")
    p.add_argument("--clip-grad-norm", type=float)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="train for this many minutes; the schedule spans them (replaces --epochs)",
    )
    p.add_argument("--log-every", type=int)
    p.add_argument(
        "--checkpoint-every",
        action=_CheckpointEvery,
        metavar="N|TIME",
        help="checkpoint every N steps and/or every TIME (10m, 90s; default 10m)",
    )
    p.set_defaults(checkpoint_every=None, checkpoint_minutes=None)
    p.add_argument(
        "--keep-best",
        metavar="METRIC",
        help="keep the best checkpoint by a validation metric (val.loss, val.accuracy, ...)",
    )
    p.add_argument("--patience", type=int, help="stop after N validations without improvement")
    p.add_argument("--metrics-format", choices=["jsonl", "csv"])
    p.add_argument("--name", help="run name (default: MODEL-DATA-TIMESTAMP)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue RUN from its last checkpoint (or from step 0 if it has none yet)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
