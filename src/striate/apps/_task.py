"""One shape for every task app: what a task module declares once, and what it gets for it.

A task module (``apps/sentiment.py``, ``apps/translation.py``, ...) holds only what is its
own: its configuration dataclass, ``train(config, resume=None)``, the model a checkpoint
holds (``..._from_checkpoint(ckpt)``) and ``evaluate``. It declares itself with one
:class:`Task`::

    TASK = Task(KIND, "a sentiment classifier", SentimentTrainConfig, train,
                sentiment_model_from_checkpoint, evaluate)
    resume = TASK.resume

and is registered by one line of :data:`TASK_MODULES`, which names it by the kind its
checkpoints carry; its predictor is the module of the same name in :mod:`striate.predict`.
That is all a new task adds, since what serves every task (``striate eval RUN``,
``striate.load``) finds it there (:func:`task_for`).

Everything around those is here, once: resuming a run with its saved configuration, loading
a checkpoint of the right kind (other tasks' ones refused with one line), the predictor of
:mod:`striate.predict` that the task's predict functions are thin layers over, opening a run
for evaluation and writing its report (``eval-SPLIT.json`` atomically, and
``confusion-SPLIT.png`` for classifiers), and the confusion matrix those reports hold.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from striate import __version__
from striate.apps._runs import resolve_checkpoint, saved_config
from striate.artifacts.checkpoint import Checkpoint, load_checkpoint, load_state_strict
from striate.artifacts.plots import plot_confusion
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir, locate_checkpoint
from striate.atomic import write_json
from striate.engine.device import resolve_device
from striate.engine.distributed import DistContext, init_distributed
from striate.errors import StriateError

# the one registration: the kind a task's checkpoints carry -> the name of its modules, in
# ``striate.apps`` (declaring its ``TASK``) and in ``striate.predict`` (its predictor)
TASK_MODULES = {
    "image-classification": "image_classification",
    "text-generation": "text_generation",
    "sentiment": "sentiment",
    "translation": "translation",
    "image-captioning": "captioning",
    "video-classification": "video",
}


@dataclass(frozen=True)
class Task:
    """A task as the rest of striate sees it.

    ``kind``: the name checkpoints carry (``meta["kind"]``); ``what``: words for people
    ("a sentiment classifier"); ``config``: the configuration dataclass (a ``TaskConfig``);
    ``train``: ``train(config, resume=None)``; ``from_checkpoint``: the trained model (and
    what comes with it) a loaded checkpoint holds, in eval mode on the CPU; ``evaluate``:
    ``evaluate(run, split, data=, data_dir=, device=, runs_dir=)``, the report of a split
    (or of other ``data``) as a dict; ``eval_split``: the split it measures by default.
    """

    kind: str
    what: str
    config: type
    train: Callable[..., Any]
    from_checkpoint: Callable[[Checkpoint], Any]
    evaluate: Callable[..., dict[str, Any]]
    eval_split: str = "test"

    def resume(
        self, run: str | Path, runs_dir: str | Path = DEFAULT_ROOT, **engine_overrides: Any
    ) -> Any:
        """Continue ``run`` from its latest checkpoint with its saved configuration.

        ``engine_overrides`` may extend it (``epochs``, ``max_steps``, ``time_budget``) or
        change how it reports (``progress``, ``log_every``); anything else would not be the
        same run (see :func:`striate.apps._runs.saved_config`)."""
        found, saved = saved_config(run, self.kind, runs_dir, engine_overrides)
        return self.train(self.config.from_dict(saved), resume=found.path)

    def checkpoint(self, run_or_checkpoint: str | Path, runs_dir: str | Path) -> Checkpoint:
        """The checkpoint a run reference names, refusing other tasks' ones with one line."""
        ckpt = load_checkpoint(resolve_checkpoint(run_or_checkpoint, runs_dir))
        refuse_other_kind(run_or_checkpoint, ckpt.meta.get("kind", "unknown"), self.kind)
        return ckpt

    def load(self, run_or_checkpoint: str | Path, runs_dir: str | Path) -> tuple[Any, dict]:
        """(what :attr:`from_checkpoint` builds, the checkpoint's metadata)."""
        ckpt = self.checkpoint(run_or_checkpoint, runs_dir)
        return self.from_checkpoint(ckpt), ckpt.meta

    def predictor(
        self, run: str | Path, device: str = "auto", runs_dir: str | Path = DEFAULT_ROOT
    ) -> Any:
        """The task's :class:`striate.predict.Predictor` over ``run`` (the one predict path)."""
        from striate.predict import load

        return load(run, device, kind=self.kind, runs_dir=runs_dir)

    def for_evaluation(self, run: str | Path, runs_dir: str | Path) -> tuple[Path, Any, dict]:
        """(the run's directory, the loaded model, its metadata) for ``evaluate``."""
        run_path, _ = locate_checkpoint(run, runs_dir)
        return (run_path, *self.load(run, runs_dir))


def registered_tasks() -> dict[str, Task]:
    """Every task of :data:`TASK_MODULES`, by the kind its checkpoints carry."""
    return {kind: task_for(kind) for kind in TASK_MODULES}


def task_for(kind: str) -> Task:
    """The registered task whose checkpoints carry ``kind`` (importing its module alone), or
    one line naming those known."""
    if kind not in TASK_MODULES:
        raise StriateError(f"no task makes {kind!r} runs (known: {', '.join(TASK_MODULES)})")
    return importlib.import_module(f"striate.apps.{TASK_MODULES[kind]}").TASK


def task_words(kind: str) -> str:
    """A kind of run in words: its task's ("an image classifier"), else "a 'KIND' model"."""
    return task_for(kind).what if kind in TASK_MODULES else f"a {kind!r} model"


def refuse_other_kind(ref: str | Path, found: str, wanted: str) -> None:
    """One line when ``ref`` holds a ``found`` run where a ``wanted`` one was asked for:
    "runs/char holds a text model, not an image classifier"."""
    if found != wanted:
        raise StriateError(f"{ref} holds {task_words(found)}, not {task_words(wanted)}")


M = TypeVar("M", bound=nn.Module)


def restored(model: M, ckpt: Checkpoint) -> M:
    """``model`` holding the weights of ``ckpt`` (every key and shape, or one line naming the
    checkpoint), in eval mode: how each task's ``from_checkpoint`` ends."""
    load_state_strict(model, ckpt.model_state, f"checkpoint {ckpt.path}")
    return model.eval()


def placement(device: str) -> tuple[DistContext, torch.device, dict[str, Any]]:
    """(process group, device, ``shard``) of a training run on ``device`` ("auto", "cuda",
    ...; under torchrun each rank its own GPU): ``shard`` holds the ``device``, ``rank`` and
    ``world_size`` arguments every batch source takes."""
    dist = init_distributed(device)
    where = resolve_device(device, dist.local_rank)
    return dist, where, {"device": where, "rank": dist.rank, "world_size": dist.world_size}


def stamp(kind: str) -> dict[str, str]:
    """What opens every checkpoint's metadata: its task and the striate that wrote it."""
    return {"kind": kind, "striate_version": __version__}


def write_report(
    run_path: Path,
    split: str,
    report: dict[str, Any],
    write: bool = True,
    confusion: tuple[torch.Tensor, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``report`` written atomically as ``RUN/eval-SPLIT.json`` (unless ``write`` is false),
    with ``confusion`` = (matrix, classes) also drawn as ``RUN/confusion-SPLIT.png`` (its
    path then added to the returned report as ``confusion_png``). A run that cannot be
    written to (a read-only copy) still gets its figures, with one line saying why nothing
    was saved."""
    if write:
        try:
            write_json(run_path / f"eval-{split}.json", report)
            if confusion is not None:
                png = run_path / f"confusion-{split}.png"
                report["confusion_png"] = str(plot_confusion(confusion[0], confusion[1], png))
        except OSError as exc:
            where = exc.filename or run_path
            print(f"striate: not saved ({exc.strerror or exc}: {where})", file=sys.stderr)
    return report


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts, rows = true class, columns = predicted class."""
    flat = truth.long().cpu() * classes + predicted.long().cpu()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def classification_counts(
    truth: torch.Tensor, predicted: torch.Tensor, classes: Sequence[str]
) -> tuple[torch.Tensor, dict[str, Any]]:
    """(confusion matrix, report entries): ``accuracy`` (the diagonal over all),
    ``per_class_accuracy`` (each row's diagonal over the row: recall per class, 0 for a
    class absent from ``truth``) and ``confusion`` as nested lists."""
    confusion = confusion_matrix(truth, predicted, len(classes))
    per_class = (confusion.diag() / confusion.sum(1).clamp_min(1)).tolist()
    return confusion, {
        "accuracy": float(confusion.diag().sum() / max(len(truth), 1)),
        "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
        "confusion": confusion.tolist(),
    }


def saved_data_settings(run_path: Path, *names: str) -> dict[str, Any]:
    """The named settings of a run's saved ``config.json`` (those it lacks left out; an
    unreadable config gives none): what evaluating on the training data needs again."""
    try:
        saved = RunDir(run_path).read_config()
    except (OSError, ValueError):
        return {}
    return {name: saved[name] for name in names if name in saved}


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block, then back in the mode it was in (generating
    during training must not leave dropout off)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def length_sorted_chunks(lengths: Sequence[int | None], size: int) -> Iterator[list[int]]:
    """Indices of the items in chunks of at most ``size``, shortest items first, so each
    chunk pads little; items of length None are left out (blank inputs)."""
    order = sorted((i for i, n in enumerate(lengths) if n is not None), key=lambda i: lengths[i])
    for begin in range(0, len(order), size):
        yield order[begin : begin + size]
