"""One way to use a trained run: ``striate.load(RUN_OR_CHECKPOINT)`` → a predictor.

    import striate
    clf = striate.load("runs/demo")            # whatever task the run holds
    clf.kind                                   # "image-classification"
    clf.describe()                             # task, model, classes, input spec, training
    clf.predict(["digit.png"], top_k=5)        # [{"top": [{"class": "7", "probability": ...}]}]

    gen = striate.load("runs/char-lstm")
    for piece in gen.stream("ROMEO:", temperature=0.8, length=200):
        print(piece, end="")

Each task is one small module here (:mod:`.image_classification`, :mod:`.text_generation`,
:mod:`.sentiment`, :mod:`.translation`, :mod:`.captioning`, :mod:`.video`) holding one
:class:`Predictor` subclass, named like the task's module in :mod:`striate.apps` and found
through the same registration (:data:`striate.apps._task.TASK_MODULES`); a predictor for
another kind of checkpoint may also be registered with :func:`register_predictor`. The
command line's predict commands and ``striate serve`` are thin layers over these
predictors.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from striate.apps._task import TASK_MODULES, refuse_other_kind
from striate.artifacts.checkpoint import Checkpoint, load_checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT, locate_checkpoint
from striate.errors import StriateError
from striate.predict.base import SERVE_LIMITS, Limits, Predictor

__all__ = ["SERVE_LIMITS", "Limits", "Predictor", "load", "register_predictor"]

_REGISTRY: dict[str, type[Predictor]] = {}


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Make ``cls`` the predictor for checkpoints of kind ``cls.kind`` (a class decorator)."""
    if not cls.kind:
        raise StriateError(f"predictor {cls.__name__} names no kind")
    _REGISTRY[cls.kind] = cls
    return cls


def predictor_class(kind: str) -> type[Predictor]:
    """The predictor registered for ``kind`` (importing a task's own module on first use)."""
    if kind not in _REGISTRY and kind in TASK_MODULES:
        importlib.import_module(f"striate.predict.{TASK_MODULES[kind]}")
    if kind not in _REGISTRY:
        known = ", ".join(sorted({*TASK_MODULES, *_REGISTRY}))
        raise StriateError(f"no predictor for {kind!r} checkpoints (known: {known})")
    return _REGISTRY[kind]


def read_checkpoint(
    run_or_checkpoint: str | Path, runs_dir: str | Path = DEFAULT_ROOT
) -> Checkpoint:
    """The checkpoint a run reference names: the one place references are resolved for
    prediction (a run directory gives its latest checkpoint; a checkpoint directory itself)."""
    _, ckpt_dir = locate_checkpoint(run_or_checkpoint, runs_dir)
    return load_checkpoint(ckpt_dir)


def load(
    run_or_checkpoint: str | Path,
    device: str = "auto",
    *,
    kind: str | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
    limits: Limits | None = None,
) -> Predictor:
    """A ready predictor for whatever task ``run_or_checkpoint`` holds, on ``device``
    (``auto``: CUDA, then MPS, then CPU).

    ``kind`` refuses other tasks with one line ("RUN holds a text model, not an image
    classifier"); ``limits`` bounds what ``predict`` accepts (default :class:`Limits`).
    """
    ckpt = read_checkpoint(run_or_checkpoint, runs_dir)
    found = ckpt.meta.get("kind", "unknown")
    if kind is not None:
        refuse_other_kind(run_or_checkpoint, found, kind)
    return predictor_class(found)(ckpt, device, limits)
