"""Export of every task's model: each file reloads with its own runtime (onnxruntime on the
CPU, torch.jit.load, torch.export.load) and matches the trained model to 1e-4 on real
inputs of other batch sizes and lengths than the export's example."""

from __future__ import annotations

import json

import pytest
import torch
from export_inputs import real_inputs

import striate
from striate.export import FORMATS, export
from striate.export.graphs import task_graphs
from striate.export.parity import TOLERANCE, load_runner, max_difference

onnx = pytest.importorskip("onnx")  # installed by the export extra (make setup, CI)
pytest.importorskip("onnxruntime")

ALL_RUNS = [
    "image",
    "text-gru",
    "sentiment-bilstm",
    "translation-bahdanau-gru",
    "translation-luong-lstm",
    "translation-none-rnn",
    "caption-attention-lstm",
    "caption-cudnn-gru",
    "video-bigru",
]
ONE_PER_TASK = ["image", "text-gru", "sentiment-bilstm", "translation-luong-lstm",
                "caption-attention-lstm", "video-bigru"]  # fmt: skip


def _check_real(run, fmt, tmp_path, shared_data) -> dict:
    info = export(run, fmt, tmp_path / f"model{FORMATS[fmt]}", check=False)
    predictor = striate.load(run, "cpu")
    found = task_graphs(predictor)
    inputs = real_inputs(found, predictor, shared_data)
    for graph, meta in zip(found.graphs, info["graphs"], strict=True):
        path = tmp_path / meta["file"]
        run_file = load_runner(fmt, path, [p["name"] for p in meta["inputs"]])
        given = inputs[graph.name]
        assert given[0].shape[0] != graph.example[0].shape[0]  # another batch size
        outputs = run_file(*given)
        assert len(outputs) == len(graph.outputs)
        assert max_difference(graph, outputs, given) <= TOLERANCE, (graph.name, fmt)
    return info


@pytest.mark.parametrize("name", ALL_RUNS)
def test_onnx_checks_and_matches_the_model_on_real_data(name, export_runs, tmp_path, shared_data):
    info = _check_real(export_runs[name], "onnx", tmp_path, shared_data)
    for meta in info["graphs"]:
        model = onnx.load(str(tmp_path / meta["file"]))
        onnx.checker.check_model(model, full_check=True)
        # every size the JSON calls dynamic is a named (symbolic) dimension in the file
        declared = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
        for port in meta["inputs"]:
            if port["name"] not in declared:
                continue
            for want, dim in zip(port["shape"], declared[port["name"]], strict=True):
                assert dim.dim_param == want if isinstance(want, str) else dim.dim_value == want
    written = json.loads((tmp_path / "model.json").read_text())
    assert written["kind"] == info["kind"] and written["format"] == "onnx"


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
@pytest.mark.parametrize("name", ONE_PER_TASK)
def test_torchscript_and_exported_program_reload_and_match(
    name, fmt, export_runs, tmp_path, shared_data
):
    _check_real(export_runs[name], fmt, tmp_path, shared_data)


def test_the_json_says_what_a_consumer_needs(export_runs, tmp_path):
    info = export(export_runs["translation-bahdanau-gru"], "onnx", tmp_path / "mt.onnx")
    assert [g["file"] for g in info["graphs"]] == ["mt.encoder.onnx", "mt.decoder_step.onnx"]
    saved = json.loads((tmp_path / "mt.json").read_text())
    assert saved["source_vocabulary"]["tokens"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    step = saved["graphs"][1]
    assert [p["name"] for p in step["inputs"]][:2] == ["token", "state"]
    assert step["parity"]["max_abs_difference"] <= TOLERANCE
    assert saved["state"]["parts"] == ["h"]  # a GRU: the state is h alone
    assert not any(str(tmp_path) in json.dumps(v) for v in saved.values())


def test_uint8_images_carry_the_division_inside(export_runs, tmp_path, shared_data):
    from striate.data.sources.images import load_image_data

    run = export_runs["image"]
    info = export(run, "onnx", tmp_path / "u8.onnx", image_dtype="uint8")
    assert info["graphs"][0]["inputs"][0]["dtype"] == "uint8"
    size = info["preprocessing"]["image_size"]
    pixels = load_image_data("mnist", "test", data_dir=shared_data, image_size=size, limit=3).images
    logits, probs = load_runner("onnx", tmp_path / "u8.onnx")(pixels)
    model = striate.load(run, "cpu").model
    with torch.no_grad():
        want = model(pixels.float() / 255)
    assert torch.allclose(logits, want, atol=TOLERANCE)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
