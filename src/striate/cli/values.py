"""The kind of every value a ``striate`` command takes, checked once, before any work.

Every number and path a command takes is checked here, so a NaN, a negative count, a zero
size or a size that cannot be allocated is one line before any work: :data:`VALUE_TYPES`
gives each numeric flag (by its destination name, for every command) its kind,
:data:`PATH_TYPES` each path flag its kind, and :func:`check_values`, called once on the
whole parser by :mod:`striate.cli.main`, gives every flag its checked type.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
                f"in {'(' if above else '['}{low:g}, {high:g}]"
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
MAX_RATE = 1e6  # learning rate, weight decay, decay factor: beyond it the weights overflow


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
    "layer": _size(MAX_LAYERS, "layer"),
    # step counts and intervals
    "epochs": _size(MAX_STEPS, "epochs"),
    "max_steps": _size(MAX_STEPS, "max steps"),
    "log_every": _size(MAX_STEPS, "log interval"),
    "step_every_epochs": _size(MAX_STEPS, "step interval"),
    "train_steps": _size(MAX_STEPS, "training steps"),
    "seed": bounded_int(0, MAX_SEED, "seed"),
    # counts where 0 means something (none, all, off)
    "top_k": _count("top-k"),
    "warmup_steps": _count("warm-up steps"),
    "checkpoint_every": _count("checkpoint interval"),
    "teacher_forcing_steps": _count("teacher-forcing steps"),
    "sample_every": _count("sample interval"),
    "val_bleu_samples": _count("number of BLEU samples"),
    "min_freq": _count("minimum frequency"),
    "workers": bounded_int(0, 256, "number of workers"),
    # numbers
    "lr": real("learning rate", 0.0, MAX_RATE, above=True),
    "gamma": real("gamma", 0.0, MAX_RATE, above=True),
    "clip_grad_norm": real("clip norm", 0.0, above=True),
    "temperature": real("temperature", 0.0, above=True),
    "weight_decay": real("weight decay", 0.0, MAX_RATE),
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

# the limits of the predictors (striate.predict.base.Limits and the classifier's top-k) for
# the commands that call them, so the parser's refusal names the limit that applies rather
# than a looser one of the same flag elsewhere (``--top-k 0`` is "all" for ``sample`` only)
MAX_PREDICT_BEAM = 50
MAX_PREDICT_LENGTH = 1_000  # tokens of one generated translation or caption
MAX_SHOWN_CLASSES = 100_000
MAX_SAMPLE_TOP_K = 1_000_000
# the kind of a flag of one command, by (command, destination): over VALUE_TYPES
COMMAND_VALUE_TYPES: dict[tuple[str, str], Callable[[str], Any]] = {
    ("classify", "top_k"): _size(MAX_SHOWN_CLASSES, "top-k"),
    ("sample", "top_k"): bounded_int(0, MAX_SAMPLE_TOP_K, "top-k"),
    ("translate", "beam"): _size(MAX_PREDICT_BEAM, "beam size"),
    ("caption", "beam"): _size(MAX_PREDICT_BEAM, "beam size"),
    ("translate", "max_length"): _size(MAX_PREDICT_LENGTH, "maximum length"),
    ("caption", "max_length"): _size(MAX_PREDICT_LENGTH, "maximum length"),
}


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
    checked type from :data:`COMMAND_VALUE_TYPES` or :data:`VALUE_TYPES` (or the fallback
    for its kind), and every path flag its type from :data:`PATH_TYPES`."""
    command = parser.prog.partition(" ")[2]  # "classify", "train translate"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                check_values(sub)
        elif action.type in FALLBACK_TYPES and action.choices is None:
            checked = COMMAND_VALUE_TYPES.get((command, action.dest))
            checked = checked or VALUE_TYPES.get(action.dest)
            action.type = checked or FALLBACK_TYPES[action.type]
        elif action.type is None and action.option_strings and action.dest in PATH_TYPES:
            action.type = PATH_TYPES[action.dest]
