"""Checkpoints: weights and optimizer state in safetensors, everything else in JSON.

A checkpoint is a directory ``checkpoints/step-00001234/`` holding

- ``model.safetensors``  the model's state dict (weights, buffers, input normalization);
- ``optimizer.safetensors``  the optimizer's tensors (momentum buffers, Adam moments);
- ``step_state.safetensors``  a step function's carried tensors (TBPTT's hidden state), if any;
- ``meta.json``  model config, class names, normalization, epoch/step, RNG states, the
  optimizer's non-tensor state and the schedule's state.

It is written into a hidden temporary directory (every file fsynced) and renamed into place,
so a crash or a kill leaves either the complete checkpoint or none; nothing is ever
unpickled on load. ``best-step-*`` is the best checkpoint kept by ``--keep-best``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from striate.atomic import fsync_dir, fsync_file, write_json
from striate.errors import StriateError

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
META_FILE = "meta.json"
STEP_STATE_FILE = "step_state.safetensors"
PREFIX = "step-"
BEST_PREFIX = "best-step-"


class Record(dict):
    """A JSON object read from a run's file: a key it lacks is one line naming the file and
    the key (a half-written or hand-edited file), not a KeyError deep in a loader."""

    source: Path = Path()

    def __missing__(self, key: str) -> Any:
        raise StriateError(f"corrupt {self.source}: it has no {key!r}")


def read_record(path: Path) -> Any:
    """The JSON in ``path``, its objects as :class:`Record` naming ``path``."""

    def record(pairs: dict) -> Record:
        found = Record(pairs)
        found.source = path
        return found

    return json.loads(path.read_text(encoding="utf-8"), object_hook=record)


@dataclass
class Checkpoint:
    path: Path
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    step_state: dict[str, torch.Tensor] | None = None


# ---------------------------------------------------------------------------------------------
# optimizer state <-> (tensors, JSON)


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], info: dict) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in info["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": info["param_groups"]}


def rng_state() -> dict[str, Any]:
    """Torch's CPU (and CUDA) generator states, base64-encoded for JSON."""
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()
        ]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    def decode(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(decode(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([decode(s) for s in state["cuda"]])


# ---------------------------------------------------------------------------------------------
# save / load


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone() breaks storage sharing (tied weights), which safetensors refuses to save.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


_NAME = re.compile(r"^(best-)?step-(\d+)(?:\.v(\d+))?$")


def _key(path: Path) -> tuple[int, int]:
    match = _NAME.match(path.name)
    assert match is not None
    return int(match.group(2)), int(match.group(3) or 1)


def _save_tensors(tensors: dict[str, torch.Tensor], target: Path) -> None:
    """``save_file`` with its failures as the ``OSError`` they are: safetensors reports a
    full disk as ``SafetensorError("... No space left on device (os error 28)")``, which the
    command line would show as a traceback instead of one line."""
    try:
        save_file(tensors, str(target))
    except SafetensorError as exc:
        raise _as_oserror(exc, target) from exc
    fsync_file(target)


def _as_oserror(exc: Exception, target: Path) -> OSError:
    message = " ".join(str(exc).split())
    code = re.search(r"os error (\d+)|code: (\d+)", message)
    if code:
        number = int(code.group(1) or code.group(2))
        return OSError(number, os.strerror(number), str(target))
    return OSError(f"cannot write {target}: {message}")


def save_checkpoint(
    directory: str | Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    keep: int | None = None,
    step_state: dict[str, torch.Tensor] | None = None,
    best: bool = False,
) -> Path:
    """Write ``directory/step-<step>/`` atomically and keep only the newest ``keep``.

    The files are written into a hidden temporary directory and each is fsynced; the
    directory is then renamed to a name no complete checkpoint has and the parent directory
    is fsynced. Saving a step that is already there (a resumed run saving its first step
    again) publishes ``step-<step>.v2`` before the older copy goes, so there is never a
    moment without a complete checkpoint. ``step_state`` holds a step function's tensors
    (TBPTT's carried hidden state). ``best=True`` writes ``best-step-<step>`` instead and
    keeps only the newest best checkpoint.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prefix = BEST_PREFIX if best else PREFIX
    tmp = directory / f".tmp-{prefix}{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:  # a failed save (a full disk) leaves no temporary folder behind
        meta = dict(meta, step=step)
        _save_tensors(_cpu_state(model_state), tmp / MODEL_FILE)
        if optimizer_state is not None:
            tensors, info = _split_optimizer_state(optimizer_state)
            _save_tensors(tensors, tmp / OPTIMIZER_FILE)
            meta["optimizer"] = info
        if step_state:
            _save_tensors(_cpu_state(step_state), tmp / STEP_STATE_FILE)
            meta["step_state"] = True
        write_json(tmp / META_FILE, meta)
        fsync_dir(tmp)
        same_step = [p for p in _complete(directory, prefix) if _key(p)[0] == step]
        version = max((_key(p)[1] for p in same_step), default=0) + 1
        final = directory / (f"{prefix}{step:08d}" + ("" if version == 1 else f".v{version}"))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(directory)
    stale = same_step + (_complete(directory, prefix)[:-1] if best else [])
    if keep and not best:
        stale += _complete(directory, prefix)[:-keep]
    for path in dict.fromkeys(stale):
        if path != final:
            shutil.rmtree(path, ignore_errors=True)
    return final


def _complete(directory: Path, prefix: str) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.name.startswith(prefix) and _NAME.match(p.name) and (p / META_FILE).is_file()
    ]
    return sorted(found, key=_key)


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (temporary ones are ignored)."""
    return _complete(Path(directory), PREFIX)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint directory's name says it was saved at."""
    return _key(path)[0]


def best_checkpoint(directory: str | Path) -> Path | None:
    """The best checkpoint kept by ``--keep-best`` in ``directory``, or None."""
    found = _complete(Path(directory), BEST_PREFIX)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, with_optimizer: bool = False) -> Checkpoint:
    """Load a checkpoint directory written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        meta = read_record(path / META_FILE)
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}, not an object")
        model_state = load_file(str(path / MODEL_FILE))
        optimizer_state = None
        if with_optimizer and "optimizer" in meta:
            tensors = load_file(str(path / OPTIMIZER_FILE))
            optimizer_state = _join_optimizer_state(tensors, meta["optimizer"])
        step_state = load_file(str(path / STEP_STATE_FILE)) if meta.get("step_state") else None
    except FileNotFoundError as exc:
        names = (META_FILE, MODEL_FILE, OPTIMIZER_FILE)  # safetensors names no file
        gone = [name for name in names if not (path / name).is_file()]
        missing = Path(exc.filename).name if exc.filename else (gone or ["a file"])[0]
        raise StriateError(f"incomplete checkpoint {path}: {missing} missing") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, wrong shape
        raise StriateError(f"corrupt checkpoint metadata {path / META_FILE}: {exc}") from None
    except (SafetensorError, OSError) as exc:
        raise StriateError(f"corrupt checkpoint weights in {path}: {exc}") from None
    return Checkpoint(path, model_state, meta, optimizer_state, step_state)


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load a state dict, turning any key or shape mismatch into one clear line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = (
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped "
            f"tensors (first: {(missing + unexpected + wrong)[0]})"
        )
        raise StriateError(f"{what} does not fit this model: {detail}")
    module.load_state_dict(state)
