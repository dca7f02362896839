"""Take a trained model out of Python: ``striate export RUN --format onnx|torchscript|
exported-program``, or :func:`export` here.

    import striate.export
    info = striate.export.export("runs/demo", "onnx")      # runs/demo/export/model.onnx
    info["graphs"][0]["inputs"]   # [{"name": "images", "dtype": "float32", "shape": [...]}]

Every task is exported (:mod:`.graphs` says what each one gives), with dynamic batch and,
where it varies, sequence length; beside the file(s) a JSON says what a consumer needs:
inputs and outputs with their shapes, classes or vocabularies, preprocessing, the layout of
a recurrent state. The files are written to temporary names, reopened with their own runtime
(:mod:`.parity`), compared with the trained model on inputs of another batch size and length
than the export's example, and only then renamed into place: a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from striate.artifacts.run_dir import DEFAULT_ROOT, locate_checkpoint
from striate.atomic import atomic_path, ensure_parent, resolve_target
from striate.errors import StriateError
from striate.export.graphs import Graph, TaskGraphs, task_graphs
from striate.export.parity import TOLERANCE, load_runner, max_difference
from striate.export.writers import FORMATS, require, write_graph

__all__ = ["FORMATS", "TOLERANCE", "export", "export_targets"]

IMAGE_DTYPES = ("float32", "uint8")


def export_targets(out: Path, graphs: list[Graph]) -> tuple[dict[str, Path], Path]:
    """(file per graph, JSON) for ``out``: one graph is ``out`` itself; several are
    ``STEM.<graph>.EXT`` beside it; the JSON is ``STEM.json``."""
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    if len(graphs) == 1:
        files = {graphs[0].name: out}
    else:
        files = {g.name: out.with_name(f"{stem}.{g.name}{out.suffix}") for g in graphs}
    return files, out.with_name(f"{stem}.json")


def _check_writable(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            raise StriateError(f"--out {path} is a directory; name a file")
        parent = path.parent
        try:
            ensure_parent(path)  # a file where a folder should be: "Not a directory"
        except OSError as exc:
            raise StriateError(f"cannot write {path}: {exc.strerror or exc}") from None
        if not parent.is_dir():
            raise StriateError(f"cannot write {path}: {parent} is not a directory")
        resolve_target(path)  # a device, FIFO or socket there: refused before the export


def _load(run: str | Path, runs_dir: str | Path) -> tuple[Any, Path]:
    from striate.predict import load

    run_dir, _ = locate_checkpoint(run, runs_dir)
    return load(run, "cpu", runs_dir=runs_dir), run_dir


def _parity(graph: Graph, fmt: str, path: Path) -> dict[str, Any]:
    run = load_runner(fmt, path, [p.name for p in graph.inputs])
    worst = 0.0
    for inputs in (graph.example, graph.probe):
        worst = max(worst, max_difference(graph, run(*inputs), inputs))
    if not worst <= TOLERANCE:
        raise StriateError(
            f"the exported {graph.name} differs from the model by {worst:.3g} "
            f"(more than {TOLERANCE:g}); nothing was written"
        )
    return {
        "max_abs_difference": worst,
        "inputs": [[list(x.shape) for x in inputs] for inputs in (graph.example, graph.probe)],
    }


def _metadata(
    found: TaskGraphs, fmt: str, files: dict[str, Path], parity: dict[str, Any], ckpt: str
) -> dict[str, Any]:
    return {
        "format": fmt,
        "kind": found.kind,
        "checkpoint": ckpt,
        "torch": torch.__version__,
        "graphs": [
            {
                "name": g.name,
                "file": files[g.name].name,
                "inputs": [p.to_dict() for p in g.inputs],
                "outputs": [p.to_dict() for p in g.outputs],
                "parity": parity.get(g.name),
            }
            for g in found.graphs
        ],
        **found.info,
    }


def export(
    run: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    *,
    runs_dir: str | Path = DEFAULT_ROOT,
    image_dtype: str = "float32",
    check: bool = True,
) -> dict[str, Any]:
    """Export the model of ``run`` (a run or checkpoint reference, any task) in ``format``
    (``onnx``, ``torchscript`` or ``exported-program``) to ``out`` (default:
    ``RUN/export/model.<ext>``) and return the JSON written beside it.

    ``image_dtype``: what image inputs take, ``float32`` pixels in [0, 1] or ``uint8``
    0..255. ``check`` (default): reopen each file with its runtime and compare it with the
    model on two input sizes; a difference over :data:`TOLERANCE` writes nothing. For ONNX
    the comparison needs onnxruntime; without it the JSON says it was not checked.
    """
    if format not in FORMATS:
        raise StriateError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if image_dtype not in IMAGE_DTYPES:
        raise StriateError(f"image dtype must be one of {', '.join(IMAGE_DTYPES)}")
    if format == "onnx":
        require("onnx", "ONNX export")
    predictor, run_dir = _load(run, runs_dir)
    target = Path(out) if out is not None else run_dir / "export" / f"model{FORMATS[format]}"
    if target.suffix.lower() == ".json":
        raise StriateError(f"--out {target} ends in .json: that name is kept for the description")
    found = task_graphs(predictor, image_dtype=image_dtype)
    files, meta_path = export_targets(target, found.graphs)
    _check_writable([*files.values(), meta_path])
    check_here = check
    if check and format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            check_here = False
    parity: dict[str, Any] = {}
    with contextlib.ExitStack() as publish:  # every file renamed into place at the end, or none
        for graph in found.graphs:
            tmp = publish.enter_context(atomic_path(files[graph.name]))
            try:
                write_graph(graph, format, tmp)
            except (StriateError, OSError):  # OSError: a full disk, one line and exit 1
                raise
            except Exception as exc:  # an exporter's failure, in one line
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StriateError(
                    f"could not export the {graph.name} as {format}: {first}"
                ) from exc
            if check_here:
                parity[graph.name] = _parity(graph, format, tmp)
        info = _metadata(found, format, files, parity, Path(str(predictor.checkpoint)).name)
        if not check_here:
            info["parity_note"] = (
                "not checked: install onnxruntime" if check else "not checked (check=False)"
            )
        tmp = publish.enter_context(atomic_path(meta_path))
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
