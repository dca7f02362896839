"""Parity: run an exported file with its own runtime and compare it with the trained model.

:func:`load_runner` opens a written graph the way a consumer would (onnxruntime on the CPU,
``torch.jit.load``, ``torch.export.load``) and returns a function of the graph's inputs;
:func:`max_difference` compares its outputs with the graph's reference, the model's own code
path (see :class:`~striate.export.graphs.Graph`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from striate.errors import StriateError
from striate.export.graphs import Graph

__all__ = ["TOLERANCE", "load_runner", "max_difference"]

TOLERANCE = 1e-4  # largest absolute difference accepted between the export and the model

Runner = Callable[..., list[Tensor]]


def load_runner(fmt: str, path: str | Path, input_names: Sequence[str] | None = None) -> Runner:
    """``run(*inputs) -> outputs`` for an exported file (tensors in, tensors out)."""
    path = str(path)
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        accepted = {i.name for i in session.get_inputs()}
        names = list(input_names) if input_names else [i.name for i in session.get_inputs()]

        def run_onnx(*inputs: Tensor) -> list[Tensor]:
            feeds = {
                n: x.detach().cpu().numpy()
                for n, x in zip(names, inputs, strict=True)
                if n in accepted  # the exporter drops an input no output depends on
            }
            return [torch.from_numpy(o) for o in session.run(None, feeds)]

        return run_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's note on its deprecation
        if fmt == "torchscript":
            module = torch.jit.load(path, map_location="cpu")
        elif fmt == "exported-program":
            module = torch.export.load(io.BytesIO(Path(path).read_bytes())).module()
        else:
            raise StriateError(f"unknown export format {fmt!r}")

    def run_torch(*inputs: Tensor) -> list[Tensor]:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    return run_torch


def _difference(got: Tensor, want: Tensor) -> float:
    if got.shape != want.shape:
        return float("inf")
    if not want.is_floating_point():
        return 0.0 if torch.equal(got.to(want.dtype), want) else float("inf")
    got, want = got.float(), want.float()
    same = (got == want) | (got.isnan() & want.isnan())  # equal infinities included
    return float(torch.where(same, 0.0, (got - want).abs()).max()) if got.numel() else 0.0


def max_difference(graph: Graph, outputs: Sequence[Tensor], inputs: Sequence[Tensor]) -> float:
    """Largest absolute difference between ``outputs`` of the exported graph on ``inputs``
    and the model's own (infinite when a shape, dtype class or count differs)."""
    with torch.no_grad():
        want = list(graph.reference(*inputs))
    got = list(outputs)
    if graph.log_softmax:
        got[0] = torch.log_softmax(got[0].float(), -1)
    if len(got) != len(want):
        return float("inf")
    return max(
        _difference(g.detach().cpu(), w.detach().cpu()) for g, w in zip(got, want, strict=True)
    )
