"""The export form of the recurrent layers computes what ``Recurrent`` computes: every cell
(the lecture's GRU with its reset gate before the recurrent product included), stacked,
both directions, rows of different lengths; scripted (TorchScript, ONNX) and as ``scan``
(exported programs)."""

from __future__ import annotations

import pytest
import torch

from striate.export.recurrence import LoopRecurrent, StackStep
from striate.nn.recurrent import CELLS, Recurrent


def _stacked(state) -> torch.Tensor:
    return torch.stack(list(state)) if isinstance(state, tuple) else state.unsqueeze(0)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_loop_matches_the_layer_with_lengths(cell):
    """Two bidirectional layers: the forward direction, the backward one (which starts at
    each row's own last step) and a layer reading both."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 6, num_layers=2, bidirectional=True).eval()
    x, lengths = torch.randn(3, 7, 5), torch.tensor([7, 2, 5])
    initial = torch.randn(2 if cell == "lstm" else 1, layer.num_layers * layer.num_directions, 3, 6)
    given = (initial[0], initial[1]) if cell == "lstm" else initial[0]
    with torch.no_grad():
        want, want_state = layer(x, given, lengths)
        loop = LoopRecurrent(layer)
        for run in (loop, torch.jit.script(loop)):  # scan (eager) and the scripted loop
            out, state = run(x, lengths, initial)
            assert torch.allclose(out, want, atol=1e-6)
            assert torch.allclose(state, _stacked(want_state), atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_step_matches_the_layer_step(cell):
    torch.manual_seed(1)
    layer = Recurrent(cell, 4, 5, num_layers=3).eval()
    state = layer.init_state(2)
    state = tuple(torch.randn_like(s) for s in state) if cell == "lstm" else torch.randn_like(state)
    x = torch.randn(2, 4)
    with torch.no_grad():
        want_h, want_state = layer.step(x, state)
        stack = StackStep(layer)
        h, new = stack(stack.first.project(x), _stacked(state))
    assert torch.allclose(h, want_h, atol=1e-6)
    assert torch.allclose(new, _stacked(want_state), atol=1e-6)


def test_the_lecture_gru_exports_to_onnx_with_a_dynamic_length(tmp_path):
    """The lecture's GRU is not torch's (reset after the product): the ONNX file computes
    the lecture's, at lengths other than the example's, and differs from torch's GRU."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(2)
    layer = Recurrent("gru", 3, 4).eval()
    loop = torch.jit.script(LoopRecurrent(layer))
    zero = torch.zeros(1, 1, 2, 4)
    torch.onnx.export(
        loop, (torch.randn(2, 5, 3), torch.tensor([5, 3]), zero), str(tmp_path / "gru.onnx"),
        dynamo=False, input_names=["x", "lengths", "state"], output_names=["out", "final"],
        dynamic_axes={"x": {0: "b", 1: "t"}, "lengths": {0: "b"}, "state": {2: "b"}},
    )  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "gru.onnx"), providers=["CPUExecutionProvider"])
    x, lengths = torch.randn(3, 11, 3), torch.tensor([11, 4, 1])
    out, _ = session.run(
        None, {"x": x.numpy(), "lengths": lengths.numpy(), "state": torch.zeros(1, 1, 3, 4).numpy()}
    )
    with torch.no_grad():
        want, _ = layer(x, lengths=lengths)
        cudnn = Recurrent("gru_cudnn", 3, 4).eval()
        cudnn.load_state_dict(layer.state_dict())
        other, _ = cudnn(x, lengths=lengths)
    assert torch.allclose(torch.from_numpy(out), want, atol=1e-5)
    assert not torch.allclose(want, other, atol=1e-3)
