"""The format writers: one graph to ONNX, TorchScript or an exported program.

* ``onnx``: PyTorch's TorchScript-based ONNX exporter (``dynamo=False``), opset
  :data:`OPSET`, with the dynamic sizes as named ``dynamic_axes``; graphs with a time loop
  are scripted first, so their loop becomes an ONNX ``Loop`` whose trip count is the input's
  length. (The dynamo exporter was tried: it cannot lower ``scan`` with a dynamic length,
  and without ``scan`` ``torch.export`` fixes the length at the example's.) Every file is
  checked with ``onnx.checker`` (``full_check``: shapes inferred end to end).
* ``torchscript``: ``torch.jit.script`` for graphs with a time loop (the loop stays a
  loop), ``torch.jit.trace`` for the others (their control flow does not depend on values).
* ``exported-program``: ``torch.export.export`` with every dynamic size a named
  ``torch.export.Dim`` (shared by name across inputs), saved with ``torch.export.save``;
  time loops are ``scan``, so the length stays dynamic.

The writer writes to the path it is given; publishing atomically is the caller's job
(:func:`striate.export.export` writes to temporary files, checks them, then renames). Every
format is serialised in memory first and the bytes written by Python: the C++ writers of
TorchScript and ONNX abort the whole process on a full disk (``c10::Error ... unexpected
pos``) instead of raising, which would leave the temporary file behind; Python's write
raises an ``OSError`` the caller turns into one line and a clean-up.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from striate.errors import StriateError
from striate.export.graphs import Graph

__all__ = ["FORMATS", "OPSET", "require", "write_graph"]

FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
OPSET = 17


def require(module: str, why: str) -> None:
    """Import ``module`` or refuse with one line naming the extra that installs it."""
    try:
        __import__(module)
    except ImportError:
        raise StriateError(f"{why} needs {module}: pip install 'striate[export]'") from None


def _script(graph: Graph) -> torch.jit.ScriptModule:
    module = graph.for_script() if graph.for_script is not None else graph.module
    return torch.jit.script(module.eval())


def _traced_or_scripted(graph: Graph) -> nn.Module:
    if graph.loops:
        return _script(graph)
    return torch.jit.trace(graph.module, graph.example, check_trace=False)


def _onnx(graph: Graph, path: Path) -> None:
    require("onnx", "ONNX export")
    import onnx

    module = _script(graph) if graph.loops else graph.module
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        graph.example,
        buffer,
        dynamo=False,
        input_names=[p.name for p in graph.inputs],
        output_names=[p.name for p in graph.outputs],
        dynamic_axes=graph.dynamic_dims(),
        opset_version=OPSET,
        do_constant_folding=True,
    )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    _write(path, data)


def _torchscript(graph: Graph, path: Path) -> None:
    buffer = io.BytesIO()
    torch.jit.save(_traced_or_scripted(graph), buffer)
    _write(path, buffer.getvalue())


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _exported_program(graph: Graph, path: Path) -> None:
    dims: dict[str, torch.export.Dim] = {}
    shapes = tuple(
        {
            i: dims.setdefault(d, torch.export.Dim(d))
            for i, d in enumerate(p.shape)
            if isinstance(d, str)
        }
        or None
        for p in graph.inputs
    )
    program = torch.export.export(graph.module, graph.example, dynamic_shapes=shapes)
    buffer = io.BytesIO()  # through a buffer: torch.export.save wants a .pt2 name otherwise
    torch.export.save(program, buffer)
    _write(path, buffer.getvalue())


def write_graph(graph: Graph, fmt: str, path: str | Path) -> None:
    """Write ``graph`` in format ``fmt`` to ``path`` (see the module docstring)."""
    path = Path(path)
    # the exporters' notes (their own deprecations, tracer hints) are not the user's business
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            _onnx(graph, path)
        elif fmt == "torchscript":
            _torchscript(graph, path)
        elif fmt == "exported-program":
            _exported_program(graph, path)
        else:
            raise StriateError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
