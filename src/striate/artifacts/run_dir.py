"""A run directory ``runs/NAME/``: everything one training run leaves behind.

::

    runs/NAME/
        config.json          the resolved configuration of the run
        metrics.jsonl        one JSON object per logged step and per epoch (or metrics.csv)
        curves.png           loss and accuracy curves, drawn at the end
        checkpoints/step-*/  safetensors weights + JSON metadata (see checkpoint.py)
        eval.json, confusion.png   written by ``striate eval``
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from striate.artifacts.checkpoint import (
    META_FILE,
    best_checkpoint,
    checkpoint_step,
    list_checkpoints,
    read_record,
)
from striate.atomic import write_json
from striate.errors import StriateError

DEFAULT_ROOT = Path("runs")


@dataclass(frozen=True)
class RunDir:
    path: Path
    # the resolved configuration a training run is about to start with: written as
    # config.json by start(), once training has found its settings consistent
    pending_config: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def latest_checkpoint(self) -> Path:
        found = list_checkpoints(self.checkpoints)
        if not found:
            raise StriateError(f"run {self.path} has no checkpoint yet")
        return found[-1]

    def start(self) -> None:
        """Write the run's ``config.json`` (making its folder if need be): called when training
        is about to take its first step, so that a run refused before then (fp16 on a CPU, a
        resume that asks for less than it has done) leaves its old configuration untouched,
        and a new one an empty folder that :meth:`discard_if_empty` removes."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StriateError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        self.make_writable()
        if self.pending_config is not None:
            self.write_config(self.pending_config)

    def discard_if_empty(self) -> None:
        """Remove the folder of a run refused before it started (an empty folder only)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def make_writable(self) -> None:
        """Refuse, before any training, a run whose files can't be written where they go: a
        file (or a symlink loop) where ``checkpoints/`` belongs, a folder where a file does."""
        try:
            self.checkpoints.mkdir(exist_ok=True)
        except OSError as exc:
            raise StriateError(
                f"run {self.path} cannot keep checkpoints: {self.checkpoints} is not a folder "
                f"({exc.strerror})"
            ) from None
        for name in ("config.json", "metrics.jsonl", "metrics.csv"):
            if (self.path / name).is_dir():
                raise StriateError(f"run {self.path}: {name} is a folder, not a file")

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_file, config)

    def read_config(self) -> dict[str, Any]:
        """The run's configuration; a missing, truncated or mis-shaped file is one line."""
        try:
            config = read_record(self.config_file)
        except FileNotFoundError:
            raise StriateError(f"run {self.path} has no {self.config_file.name}") from None
        except (OSError, ValueError) as exc:  # not JSON, not UTF-8, unreadable
            raise StriateError(f"corrupt run configuration {self.config_file}: {exc}") from None
        if not isinstance(config, dict):
            kind = type(config).__name__
            raise StriateError(f"corrupt run configuration {self.config_file}: a JSON {kind}")
        return config


def new_run(name: str | None, prefix: str, root: str | Path = DEFAULT_ROOT) -> RunDir:
    """Create ``root/name`` (default name: ``prefix-YYYYmmdd-HHMMSS``), never one in use;
    it stays empty until :meth:`RunDir.start`."""
    root = Path(root)
    path = root / (name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not name:  # a default name never collides: two runs started in the same second
        stem, n = path.name, 2
        while path.exists():
            path, n = root / f"{stem}-{n}", n + 1
    if path.exists() and any(path.iterdir()):
        raise StriateError(f"run directory {path} already exists; pick another --name or --resume")
    try:
        path.mkdir(parents=True, exist_ok=True)  # the name is taken from now on
    except OSError as exc:
        raise StriateError(f"cannot create run directory {path}: {exc.strerror}") from None
    return RunDir(path)


def _named(run: str | Path) -> None:
    """Refuse an empty run reference (``Path("")`` would be the current folder)."""
    if not str(run).strip():
        raise StriateError("an empty run name: give a run's name or path")


def _readable_name(path: Path) -> Path:
    """``path``, or one line when the system can't even look it up (a name too long)."""
    try:
        path.exists()
    except OSError as exc:
        raise StriateError(f"cannot look up {str(path)[:60]!r}...: {exc.strerror}") from None
    return path


def open_run(run: str | Path, root: str | Path = DEFAULT_ROOT) -> RunDir:
    """Find an existing run by path, or by name under ``root``."""
    _named(run)
    for candidate in (_readable_name(Path(run)), _readable_name(Path(root) / str(run))):
        if (candidate / "checkpoints").is_dir() or (candidate / "config.json").is_file():
            return RunDir(candidate)
    raise StriateError(f"no run found at {run!s} (looked for a run directory with checkpoints)")


def locate_checkpoint(path: str | Path, root: str | Path = DEFAULT_ROOT) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) for a run reference.

    A checkpoint directory names itself; ``RUN`` names the run's best checkpoint (kept by
    ``--keep-best``) when it has one, else its latest; ``RUN@latest``, ``RUN@best`` and
    ``RUN@step-N`` select others. ``apps._runs.resolve_checkpoint`` is the public name.
    """
    _named(path)
    text = str(_readable_name(Path(path)))
    if (Path(text) / META_FILE).is_file():
        return Path(text).parent.parent, Path(text)
    base, sep, which = text.rpartition("@")
    if not sep or not base or "/" in which or Path(text).exists():
        base, which = text, ""
    run = open_run(base, root)
    best = best_checkpoint(run.checkpoints)
    if which in ("", "best") and best is not None:
        return run.path, best
    if which == "best":
        raise StriateError(f"run {run.path} has no best checkpoint (train with --keep-best)")
    if which in ("", "latest"):
        return run.path, run.latest_checkpoint()
    match = re.fullmatch(r"step-?(\d+)", which)
    if match is None:
        raise StriateError(f"{text!r}: after @ write latest, best or step-N")
    wanted = int(match.group(1))
    saved = list_checkpoints(run.checkpoints)
    found = [p for p in [*saved, *([best] if best else [])] if checkpoint_step(p) == wanted]
    if not found:
        steps = ", ".join(str(checkpoint_step(p)) for p in saved) or "none"
        raise StriateError(f"run {run.path} has no checkpoint at step {wanted} (saved: {steps})")
    return run.path, found[-1]
