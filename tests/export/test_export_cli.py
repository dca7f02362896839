"""``striate export`` on the command line: it writes and reports; bad input is one line on
stderr, exit code 2, and leaves nothing behind."""

from __future__ import annotations

import json
import shutil

import pytest

from striate.cli.main import main
from striate.errors import StriateError
from striate.export import export

pytest.importorskip("onnx")


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_export_writes_the_file_and_its_json(export_runs, tmp_path, capsys):
    out = tmp_path / "lenet.pt"
    assert (
        main(["export", str(export_runs["image"]), "--format", "torchscript", "--out", str(out)])
        == 0
    )
    assert _files(tmp_path) == ["lenet.json", "lenet.pt"]
    printed = capsys.readouterr().out
    assert "lenet.pt" in printed and "matches the model" in printed
    assert json.loads((tmp_path / "lenet.json").read_text())["graphs"][0]["parity"] is not None


def _refused(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("striate: error:")
    return err


def test_unknown_format_is_refused(export_runs, tmp_path, capsys):
    err = _refused(["export", str(export_runs["image"]), "--format", "coreml", "--out",
                    str(tmp_path / "m.x")], capsys)  # fmt: skip
    assert "coreml" in err and _files(tmp_path) == []


def test_a_run_of_an_unknown_kind_is_refused(export_runs, tmp_path, capsys):
    run = tmp_path / "odd"
    shutil.copytree(export_runs["image"], run)
    for meta in run.rglob("meta.json"):
        data = json.loads(meta.read_text())
        data["kind"] = "protein-folding"
        meta.write_text(json.dumps(data))
    before = _files(tmp_path)
    err = _refused(["export", str(run), "--out", str(tmp_path / "out" / "m.onnx")], capsys)
    assert "protein-folding" in err
    assert _files(tmp_path) == before


def test_an_unwritable_out_is_refused(export_runs, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = _refused(["export", str(export_runs["text-gru"]), "--out",
                    str(blocker / "m.onnx")], capsys)  # fmt: skip
    assert "m.onnx" in err and "Not a directory" in err
    with pytest.raises(StriateError, match="cannot write"):  # the Python API says it too
        export(export_runs["text-gru"], "onnx", blocker / "m.onnx")
    assert _files(tmp_path) == ["a-file"]


def test_an_out_named_like_the_description_is_refused(export_runs, tmp_path, capsys):
    err = _refused(["export", str(export_runs["image"]), "--out", str(tmp_path / "m.json")], capsys)
    assert ".json" in err and _files(tmp_path) == []


def test_a_failed_check_publishes_nothing(export_runs, tmp_path, capsys, monkeypatch):
    """Files are written to temporary names, checked, then renamed: an export that fails
    its parity check (forced here) leaves neither a graph nor a JSON, nor a temporary."""
    import striate.export as ex

    monkeypatch.setattr(ex, "TOLERANCE", -1.0)
    out = tmp_path / "mt.onnx"
    err = _refused(["export", str(export_runs["translation-none-rnn"]), "--out", str(out)], capsys)
    assert "differs from the model" in err
    assert _files(tmp_path) == []
