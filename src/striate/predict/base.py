"""What every predictor shares: the checkpoint it came from, the device, the bounds on its
inputs and options, and the checks that enforce them.

A predictor is built from one checkpoint alone (weights, vocabularies, class names,
preprocessing). Its surface is small and the same for every task:

- ``kind``: the task, as the checkpoint names it (``image-classification``, ...);
- ``describe()``: a JSON-serialisable summary (task, model, classes or vocabulary size,
  input spec, training summary, the accepted options and their bounds);
- ``predict(inputs, **options)``: plain, JSON-serialisable results;
- ``example()``: one input ``predict`` accepts, and ``warm_up()``, which predicts on it.

Every option is checked here, once, with a one-line :class:`StriateError`, so the command
line and the web server refuse the same bad input with the same words.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from striate.artifacts.checkpoint import Checkpoint
from striate.engine.device import resolve_device
from striate.errors import StriateError


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one ``predict`` call accepts.

    The defaults suit the Python API and the command line; ``striate serve`` passes tighter
    ones (:data:`SERVE_LIMITS`), since a web client is not trusted.
    """

    max_items: int = 10_000  # images, texts or sentences in one call
    max_chars: int = 100_000  # characters in one text, sentence or prime
    max_pixels: int = 64_000_000  # width x height of one decoded image (decompression bombs)
    max_frames: int = 10_000  # frames of one clip
    max_beam: int = 50
    max_length: int = 1_000  # tokens of one generated caption or translation
    max_sample_length: int = 10_000_000  # characters of one text-generation sample
    max_temperature: float = 100.0


SERVE_LIMITS = Limits(
    max_items=64,
    max_chars=5_000,
    max_pixels=16_000_000,
    max_frames=256,
    max_beam=10,
    max_length=200,
    max_sample_length=5_000,
)


# ---------------------------------------------------------------------------------------------
# option checks (one line each)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high], else a one-line error naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StriateError(f"{name} must be an integer, not {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise StriateError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise StriateError(f"{name} must be between {low} and {high}, not {value}")
    return value


def check_float(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StriateError(f"{name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise StriateError(f"{name} must be a finite number, not {value}")
    if (value <= low if low_open else value < low) or value > high:
        bracket = "(" if low_open else "["
        raise StriateError(f"{name} must be in {bracket}{low:g}, {high:g}], not {value:g}")
    return value


def check_seed(value: Any) -> int | None:
    if value is None:
        return None
    return check_int("seed", value, 0, 2**63 - 1)


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(name: str, text: Any, limits: Limits, blank_ok: bool = False) -> str:
    """A non-blank string (non-empty with ``blank_ok``: a prime may be a newline) of at
    most ``limits.max_chars`` characters, all valid Unicode (no lone surrogate, which no
    vocabulary holds and no UTF encoder accepts)."""
    if not isinstance(text, str):
        raise StriateError(f"{name} must be a string, not {type(text).__name__}")
    if not (text if blank_ok else text.strip()):
        raise StriateError(f"{name} is empty")
    if len(text) > limits.max_chars:
        raise StriateError(f"{name} has {len(text)} characters; at most {limits.max_chars}")
    lone = _SURROGATE.search(text)
    if lone:  # undecodable bytes of argv, or "\ud800" in JSON: not text a model can read
        raise StriateError(
            f"{name} is not valid Unicode (a lone surrogate at position {lone.start()})"
        )
    return text


def as_list(inputs: Any, what: str, limits: Limits) -> list[Any]:
    """One input or a list of them, as a non-empty list of at most ``limits.max_items``."""
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not items:
        raise StriateError(f"no {what}s given")
    if len(items) > limits.max_items:
        raise StriateError(f"{len(items)} {what}s in one call; at most {limits.max_items}")
    return items


def no_unknown(options: dict[str, Any], known: tuple[str, ...]) -> None:
    """Refuse options this task does not have (a typo must not be silently ignored)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise StriateError(f"unknown option {unknown[0]!r}; this task takes: {accepted}")


def finite_weights(ckpt: Checkpoint) -> None:
    """Refuse a checkpoint holding a NaN or infinite weight, when it is loaded: every output
    would be NaN, and a beam search over NaN scores finds no hypothesis at all, so the
    decoders (captions, translations) would fail without saying why."""
    for name, tensor in ckpt.model_state.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            what = "NaN" if bool(tensor.isnan().any()) else "infinite"
            raise StriateError(
                f"checkpoint {ckpt.path} holds {what} weights ({name}): they are corrupt or "
                "training diverged"
            )


# ---------------------------------------------------------------------------------------------
# the protocol


class Predictor:
    """Base class: a trained model on a device, ready to predict. Subclasses set ``kind``,
    ``options`` (the names ``predict`` accepts), build their model in ``_build`` and
    implement ``predict``."""

    kind: ClassVar[str] = ""
    task: ClassVar[str] = ""  # words for people: "image classifier"
    options: ClassVar[tuple[str, ...]] = ()
    # True when ``predict(list, **options)`` gives one result per input, in order, each
    # depending on its own input and the options alone: then calls with equal options may
    # be merged into one (``striate serve`` batches concurrent requests so).
    batchable: ClassVar[bool] = False

    def __init__(self, ckpt: Checkpoint, device: str = "auto", limits: Limits | None = None):
        self.meta = ckpt.meta
        self.checkpoint = ckpt.path
        self.device = resolve_device(device)
        self.limits = limits or Limits()
        self._build(ckpt)
        finite_weights(ckpt)

    def _build(self, ckpt: Checkpoint) -> None:
        raise NotImplementedError

    def predict(self, inputs: Any, **options: Any) -> Any:
        raise NotImplementedError

    def example(self) -> Any:
        """One input ``predict`` accepts, made from the model alone (a blank image of its
        size, a character or word it knows): for a warm-up, or to try a predictor out.
        None where a predictor has none."""
        return None

    def warm_up(self) -> None:
        """Predict once on :meth:`example` (if there is one), so that the first real request
        does not pay for what a process's first forward pass sets up (the CPU's kernel
        choices for these shapes, the allocator's pools): a served char-LSTM's first
        characters came up to five times later than the rest."""
        example = self.example()
        if example is not None:
            self.predict(example)

    def _input_spec(self) -> dict[str, Any]:
        return {}

    def _model_summary(self) -> dict[str, Any]:
        return dict(self.meta.get("model", {}))

    def describe(self) -> dict[str, Any]:
        """What this predictor is: task, model, input spec, training summary, options."""
        history = self.meta.get("history") or []
        last = history[-1] if history and isinstance(history[-1], dict) else {}
        return {
            "kind": self.kind,
            "task": self.task,
            "checkpoint": Path(self.checkpoint).name,
            "model": self._model_summary(),
            "input": self._input_spec(),
            "training": {
                "step": self.meta.get("step"),
                "data": _plain(self.meta.get("data")),
                "last_validation": {k: v for k, v in last.items() if _is_number(v)},
            },
            "options": list(self.options),
            "limits": asdict(self.limits),
            "device": str(self.device),
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, dict, list, type(None))) else str(value)


def to_float_images(batch: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 → float 0..1; floats pass through."""
    return batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
