"""What every ``striate`` command module shares: the parser class, the engine flags, the
config built from the flags, the report and reading inputs from a file.

A command module (``striate.cli.<task>``) has one public function,
``register(commands, train_tasks, analyses)``, that adds its subcommands to the three
argparse sub-command groups: top-level commands, ``striate train <task>`` and
``striate analyze <analysis>``. :mod:`striate.cli.main` calls every module's ``register``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
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


# ---------------------------------------------------------------------------------------------
# value types: every number and path a command takes is checked here, once, so a NaN, a
# negative count, a zero size or a size that cannot be allocated is one line before any work


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text.strip())
    except (ValueError, OverflowError):
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {name}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a finite number")
    return value


def finite_float(text: str) -> float:
    """Any finite number (NaN and infinities are refused)."""
    return _number(text, float)


def real(
    what: str, low: float = -math.inf, high: float = math.inf, above: bool = False
) -> Callable[[str], float]:
    """A finite-number type in [low, high] (``above``: low itself excluded); ``what`` names
    the value in the one-line refusal ("learning rate must be > 0, got -1.0")."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if value < low or (above and value == low) or value > high:
            bounds = (
                f"in [{low:g}, {high:g}]"
                if math.isfinite(high)
                else f"{'>' if above else '>='} {low:g}"
            )
            raise argparse.ArgumentTypeError(f"{what} must be {bounds}, got {value:g}")
        return value

    return parse


def bounded_int(low: int, limit: int, what: str) -> Callable[[str], int]:
    """An integer type in [low, limit]: ``what`` names it in the one-line refusal, which gives
    the limit for a value too large to allocate or to run ("hidden size 10000000000 is over
    the limit 16384")."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            least = {0: "not be negative", 1: "be at least 1"}.get(low, f"be at least {low}")
            raise argparse.ArgumentTypeError(f"{what} must {least}, got {value}")
        if value > limit:
            raise argparse.ArgumentTypeError(f"{what} {value} is over the limit {limit}")
        return value

    return parse


# the limits: far above what a lecture-sized model uses, far below what would exhaust memory
MAX_WIDTH = 16_384  # hidden units, embedding size
MAX_LAYERS = 64
MAX_IMAGE_SIDE = 4_096
MAX_BATCH = 65_536
MAX_BEAM = 1_024
MAX_FRAMES = 1_024
MAX_STEPS = 10**9  # steps, epochs, intervals: long but finite
MAX_ITEMS = 10**8  # counts of texts, images, characters, vocabulary entries
MAX_TOKENS = 1_000_000  # generated characters or tokens, sequence lengths
MAX_SEED = 2**32 - 1


def _size(limit: int, what: str) -> Callable[[str], int]:
    return bounded_int(1, limit, what)


def _count(what: str) -> Callable[[str], int]:
    return bounded_int(0, MAX_ITEMS, what)


def _fraction(what: str) -> Callable[[str], float]:
    return real(what, 0.0, 1.0)


# The kind of every numeric flag, by its destination name, for every command: build_parser
# gives each plain ``type=int`` / ``type=float`` flag its checked type from here, so a flag
# added later is checked too (by the fallbacks: a count >= 0, a finite number).
VALUE_TYPES: dict[str, Callable[[str], Any]] = {
    # sizes: zero is refused (never "not set"), and so is a size too large to allocate
    "hidden": _size(MAX_WIDTH, "hidden size"),
    "embedding": _size(MAX_WIDTH, "embedding size"),
    "layers": _size(MAX_LAYERS, "number of layers"),
    "image_size": _size(MAX_IMAGE_SIDE, "image size"),
    "batch_size": _size(MAX_BATCH, "batch size"),
    "batch": _size(MAX_BATCH, "batch size"),
    "beam": _size(MAX_BEAM, "beam size"),
    "frames": _size(MAX_FRAMES, "frames per clip"),
    "length": _size(MAX_TOKENS, "length"),
    "max_len": _size(MAX_TOKENS, "maximum length"),
    "max_length": _size(MAX_TOKENS, "maximum length"),
    "lag": _size(MAX_TOKENS, "lag"),
    "adding_length": _size(MAX_TOKENS, "adding-problem length"),
    "max_chars": _size(MAX_ITEMS, "number of characters"),
    "max_vocab": _size(MAX_ITEMS, "vocabulary size"),
    "limit": _size(MAX_ITEMS, "limit"),
    "count": _size(MAX_ITEMS, "count"),
    "clips": _size(MAX_ITEMS, "number of clips"),
    "val_clips": _size(MAX_ITEMS, "number of validation clips"),
    "test_clips": _size(MAX_ITEMS, "number of test clips"),
    "val_bleu_samples": _size(MAX_ITEMS, "number of BLEU samples"),
    "layer": _size(MAX_LAYERS, "layer"),
    # step counts and intervals
    "epochs": _size(MAX_STEPS, "epochs"),
    "max_steps": _size(MAX_STEPS, "max steps"),
    "log_every": _size(MAX_STEPS, "log interval"),
    "step_every_epochs": _size(MAX_STEPS, "step interval"),
    "sample_every": _size(MAX_STEPS, "sample interval"),
    "train_steps": _size(MAX_STEPS, "training steps"),
    "seed": bounded_int(0, MAX_SEED, "seed"),
    # counts where 0 means something (none, all, off)
    "top_k": _count("top-k"),
    "warmup_steps": _count("warm-up steps"),
    "checkpoint_every": _count("checkpoint interval"),
    "teacher_forcing_steps": _count("teacher-forcing steps"),
    "min_freq": _count("minimum frequency"),
    "workers": bounded_int(0, 256, "number of workers"),
    # numbers
    "lr": real("learning rate", 0.0, above=True),
    "gamma": real("gamma", 0.0, above=True),
    "clip_grad_norm": real("clip norm", 0.0, above=True),
    "temperature": real("temperature", 0.0, above=True),
    "weight_decay": real("weight decay", 0.0),
    "length_penalty": real("length penalty", 0.0),
    "momentum": _fraction("momentum"),
    "val_fraction": _fraction("validation fraction"),
    "test_fraction": _fraction("test fraction"),
    "dropout": _fraction("dropout"),
    "label_smoothing": _fraction("label smoothing"),
    "teacher_forcing": _fraction("teacher-forcing ratio"),
    "teacher_forcing_end": _fraction("final teacher-forcing ratio"),
}
FALLBACK_TYPES: dict[type, Callable[[str], Any]] = {int: _count("count"), float: finite_float}


def _probe(text: str) -> Path:
    """``text`` as a path, refusing an empty one and one that loops through symlinks."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    path = Path(text).expanduser()
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise argparse.ArgumentTypeError(f"{text} is a symlink that leads nowhere") from None
    except OSError as exc:  # ELOOP (a symlink loop), ENAMETOOLONG, ENOTDIR, EACCES ...
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    return path


def existing_file(text: str) -> str:
    """A file that exists (not a folder); ``-`` is standard input."""
    if text == "-":
        return text
    path = _probe(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} not found: the file does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    return text


def folder(text: str) -> str:
    """A folder to read from or write into: it may not exist yet, but it is not a file."""
    path = _probe(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def output_file(text: str) -> str:
    """A file to write: not an existing folder, and no file stands where a folder must be."""
    path = _probe(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name to write")
    for parent in path.parents:
        _probe(str(parent))
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is a file")
            break
    return text


def run_name(text: str) -> str:
    """A run's name: a folder under the runs directory, so neither empty, absolute nor
    climbing out of it with ``..``."""
    path = Path(text)
    if not text.strip() or path.is_absolute() or ".." in path.parts or path == Path("."):
        raise argparse.ArgumentTypeError(
            f"run name {text!r} must name a folder inside the runs directory"
        )
    return text


# the kind of every path flag, by destination name, for every command
PATH_TYPES: dict[str, Callable[[str], str]] = {
    "name": run_name,
    "out": output_file,
    "file": existing_file,
    "text": existing_file,
    "runs_dir": folder,
    "data_dir": folder,
}


def check_values(parser: argparse.ArgumentParser) -> None:
    """Give every plain ``int``/``float`` flag of ``parser`` and of its sub-commands its
    checked type from :data:`VALUE_TYPES` (or the fallback for its kind), and every path
    flag its type from :data:`PATH_TYPES`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                check_values(sub)
        elif action.type in FALLBACK_TYPES and action.choices is None:
            action.type = VALUE_TYPES.get(action.dest, FALLBACK_TYPES[action.type])
        elif action.type is None and action.option_strings and action.dest in PATH_TYPES:
            action.type = PATH_TYPES[action.dest]


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
    if args.resume:
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

    content = sys.stdin.read().replace("\r\n", "\n") if file == "-" else read_text_file(file)
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise StriateError(f"{'standard input' if file == '-' else file} holds no {what}s")
    return lines if keep_blank else texts


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
