"""What every task does around training: open or continue a run, and reload its saved config."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from striate.artifacts.checkpoint import META_FILE, PREFIX, list_checkpoints
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir, locate_checkpoint, new_run, open_run
from striate.engine.device import device_available
from striate.engine.distributed import DistContext
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


class TaskConfig:
    """Base of every task's configuration dataclass: rebuilt from its saved JSON."""

    engine: EngineConfig

    def _engine_from_dict(self) -> None:
        if isinstance(self.engine, dict):
            self.engine = EngineConfig(**self.engine)

    @staticmethod
    def _require(checks: Iterable[tuple[bool, str]]) -> None:
        """Refuse the first failed (condition, one-line message) check."""
        for ok, message in checks:
            if not ok:
                raise StriateError(message)

    @classmethod
    def default_engine(cls) -> EngineConfig:
        """The task's training recipe: the default of its ``engine`` field, which a command
        line's engine flags override one by one."""
        engine = next(f for f in fields(cls) if f.name == "engine")
        return engine.default_factory()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def recurrent_engine_defaults(**changes: Any) -> EngineConfig:
    """The engine settings recurrent models train well with, for every task that has them:
    Adam (lr 2e-3, no weight decay), a cosine schedule, gradient clipping by norm at 5 (on by
    default for recurrent models), fp32 (bf16 autocast is an option), batch 64. A task
    passes what it changes (epochs, warm-up, logging interval, ...)."""
    base = EngineConfig(
        batch_size=64,
        optimizer="adam",
        lr=2e-3,
        weight_decay=0.0,
        schedule="cosine",
        clip_grad_norm=5.0,
        precision="fp32",
    )
    return replace(base, **changes)


# engine settings a resumed run may change: how long it goes on and how it reports
RESUMABLE = {
    "epochs",
    "max_steps",
    "time_budget",
    "progress",
    "log_every",
    "device",
    "checkpoint_every",
    "checkpoint_minutes",
}


def prepare_run(
    config: Any, kind: str, prefix: str, resume: str | Path | None, dist: DistContext
) -> tuple[RunDir | None, Path | None]:
    """(run directory or None off rank 0, checkpoint to resume from or None).

    A new run gets a fresh directory; a resumed one continues in its own, from its latest
    checkpoint, or from step 0 if it was stopped before its first checkpoint. On rank 0 the
    run carries the resolved configuration, which the engine writes as ``config.json`` when
    training starts (:meth:`RunDir.start`, which also refuses files of the wrong kind, such
    as a file where ``checkpoints/`` belongs).
    """
    run, resume_from = None, None
    if resume is not None:
        run = open_run(resume, config.runs_dir)
        found = list_checkpoints(run.checkpoints)
        resume_from = found[-1] if found else None
        if dist.is_main and resume_from is None and any(run.checkpoints.glob(f"{PREFIX}*")):
            print(
                f"striate: {run.checkpoints} holds no complete checkpoint (none has its "
                f"{META_FILE}); training from step 0",
                file=sys.stderr,
            )
    elif dist.is_main:
        run = new_run(config.name, prefix, config.runs_dir)
    if run is None or not dist.is_main:
        return None, resume_from
    return replace(run, pending_config={"kind": kind, **asdict(config)}), resume_from


def saved_config(
    run: str | Path, kind: str, runs_dir: str | Path, engine_overrides: dict[str, Any]
) -> tuple[RunDir, dict[str, Any]]:
    """A run's saved configuration, with the allowed engine settings changed for a resume.

    Without ``max_steps`` a resumed run goes on to its planned end. ``epochs`` or
    ``time_budget`` other than the saved ones set a new total length (see the engine's
    resume rule in the README: the added part follows a cosine tail from the learning
    rate at the resume point).
    """
    unknown = set(engine_overrides) - RESUMABLE
    if unknown:
        raise StriateError(f"cannot change {', '.join(sorted(unknown))} when resuming a run")
    found = open_run(run, runs_dir)
    saved = found.read_config()
    if saved.get("kind") != kind:
        raise StriateError(f"run {found.path} is a {saved.get('kind')} run, not {kind}")
    saved.pop("kind")
    engine = dict(engine_overrides)
    saved["engine"]["max_steps"] = engine.pop("max_steps", None)
    saved["engine"].update({k: v for k, v in engine.items() if v is not None})
    trained_on = saved["engine"].get("device", "auto")
    if not device_available(trained_on):  # trained on a GPU, resumed on a laptop (or back)
        print(
            f"striate: {found.path} was trained on {trained_on}, which this machine lacks; "
            "resuming on the automatic device",
            file=sys.stderr,
        )
        saved["engine"]["device"] = "auto"
    saved["runs_dir"] = str(found.path.parent)
    return found, saved


def resolve_checkpoint(ref: str | Path, runs_dir: str | Path = DEFAULT_ROOT) -> Path:
    """The checkpoint directory a run reference names; every load path resolves through it.

    - a checkpoint directory (holding ``meta.json``): itself;
    - ``RUN`` (a path, or a name under ``runs_dir``): its best checkpoint (kept by
      ``--keep-best``) when it has one, else its latest;
    - ``RUN@latest``: its latest checkpoint; ``RUN@best``: its best; ``RUN@step-N``: the
      one saved at step N.
    """
    return locate_checkpoint(ref, runs_dir)[1]


def run_kind(ref: str | Path, runs_dir: str | Path = DEFAULT_ROOT) -> str:
    """The task a run reference's checkpoint was trained for ("text-generation", ...),
    read from its ``meta.json`` alone (no weights are loaded)."""
    path = resolve_checkpoint(ref, runs_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StriateError(f"cannot read checkpoint metadata {path}: {exc}") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(kind, str):
        raise StriateError(f"checkpoint metadata {path} does not say which task it is")
    return kind
