"""The checks on a checkpoint's task metadata, in one place for every task's loader.

``meta.json`` is plain JSON that people edit, merge and truncate; a key that is present but
holds the wrong thing (``"classes": []``, ``"model": null``, ``"std": "x"``) must be refused
where the checkpoint is read, with one line naming the file and the field ("corrupt
checkpoint metadata PATH: classes is empty"), not surface later as an IndexError in a
predictor, a summary or an export. Each ``*_from_checkpoint`` loader of :mod:`striate.apps`
reads its fields through these helpers, so every command that loads a run gets the same
refusal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sized
from typing import Any, TypeVar

from striate.artifacts.checkpoint import META_FILE, Checkpoint
from striate.errors import StriateError

T = TypeVar("T")
V = TypeVar("V", bound=Sized)


def corrupt(ckpt: Checkpoint, problem: str) -> StriateError:
    """The one-line error for a checkpoint whose metadata holds ``problem``."""
    return StriateError(f"corrupt checkpoint metadata {ckpt.path / META_FILE}: {problem}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def section(ckpt: Checkpoint, key: str) -> dict[str, Any]:
    """``meta[key]`` as a JSON object (a model's configuration, its input, ...)."""
    value = ckpt.meta[key]
    if not isinstance(value, dict):
        raise corrupt(ckpt, f"{key} is not an object (it is {_kind(value)})")
    return value


def built(ckpt: Checkpoint, key: str, build: Callable[[], T]) -> T:
    """``build()`` (a model made from ``meta[key]``), its errors from wrong values in that
    configuration (a string where a number belongs, an unknown argument or model name) as
    one line naming the file, since the configuration is what is wrong."""
    section(ckpt, key)
    try:
        return build()
    except (StriateError, TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        if str(exc).startswith("corrupt "):  # a key it lacks: already one line naming it
            raise
        raise corrupt(ckpt, f"{key} does not describe a model ({exc})") from None


def numbers(ckpt: Checkpoint, name: str, value: Any) -> list[float]:
    """``value`` as a non-empty list of finite numbers."""
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    )
    if not ok:
        raise corrupt(ckpt, f"{name} is not a list of numbers")
    return [float(v) for v in value]


def normalization(ckpt: Checkpoint) -> tuple[list[float], list[float]]:
    """(mean, std) per channel: lists of numbers of the same length, every std positive."""
    norm = section(ckpt, "normalization")
    mean = numbers(ckpt, "normalization mean", norm["mean"])
    std = numbers(ckpt, "normalization std", norm["std"])
    if len(mean) != len(std):
        raise corrupt(ckpt, f"normalization has {len(mean)} means but {len(std)} stds")
    if min(std) <= 0:
        raise corrupt(ckpt, "normalization std holds a value that is not positive")
    return mean, std


def class_names(ckpt: Checkpoint, outputs: int) -> list[str]:
    """``meta["classes"]``: one distinct name (a string) per output of the model."""
    classes = ckpt.meta["classes"]
    if not isinstance(classes, list):
        raise corrupt(ckpt, f"classes is not a list of names (it is {_kind(classes)})")
    if not classes:
        raise corrupt(ckpt, "classes is empty")
    if not all(isinstance(c, str) for c in classes):
        raise corrupt(ckpt, "classes holds something that is not a name (a string)")
    if len(classes) != outputs:
        names = f"{len(classes)} name" + ("" if len(classes) == 1 else "s")
        raise corrupt(ckpt, f"classes holds {names} for a {outputs}-way model")
    if len(set(classes)) != len(classes):
        raise corrupt(ckpt, "classes names a class twice")
    return list(classes)


def vocabulary(ckpt: Checkpoint, key: str, read: Callable[[Any], V], size: int) -> V:
    """``read(meta[key])``, a vocabulary from its JSON, holding one token per row of the
    model's ``size``-row embedding or output (an id past either would be an IndexError, or
    a wrong word, at prediction time)."""
    try:
        vocab = read(ckpt.meta[key])
    except (StriateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise corrupt(ckpt, f"{key} is not a vocabulary ({exc})") from None
    if len(vocab) != size:
        raise corrupt(ckpt, f"{key} holds {len(vocab)} tokens for a model of {size}")
    return vocab
