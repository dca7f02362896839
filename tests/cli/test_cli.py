"""The command line: every command works, and bad input is one line with exit code 2."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from striate.apps._task import registered_tasks
from striate.artifacts.checkpoint import save_checkpoint
from striate.cli.main import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "train",
            "image",
            "--data",
            "digits",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--name",
            "d",
            "--runs-dir",
            str(runs),
            "--no-progress",
        ]
    )
    assert code == 0
    return runs / "d"


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_train_eval_classify_round_trip(digits_run, tmp_path, capsys):
    assert (digits_run / "config.json").is_file() and (digits_run / "curves.png").is_file()
    assert (digits_run / "metrics.jsonl").read_text().count("\n") >= 3
    code, out, _ = _run(capsys, "eval", str(digits_run), "--json")
    report = json.loads(out)
    assert code == 0 and report["accuracy"] > 0.8 and report["top5"] >= report["accuracy"]
    assert len(report["per_class_accuracy"]) == 10
    image = tmp_path / "seven.png"
    Image.new("L", (40, 30), 0).save(image)
    code, out, _ = _run(capsys, "classify", str(digits_run), str(image), "--json")
    top = json.loads(out)[0]["top"]
    assert code == 0 and len(top) == 5
    assert sum(t["probability"] for t in top) <= 1.0 + 1e-6
    code, out, _ = _run(capsys, "classify", str(digits_run), str(image))
    assert code == 0 and "1." in out and "%" in out


def test_models_and_data_commands(capsys):
    code, out, _ = _run(capsys, "models", "resnet*")
    assert code == 0 and "resnet20" in out and "resnet50" in out and "lenet5" not in out
    code, out, _ = _run(capsys, "data")
    assert code == 0 and "mnist" in out and "digits" in out and "shakespeare" in out


def test_eval_runs_the_evaluate_of_the_task_each_run_holds(tmp_path, monkeypatch, capsys):
    calls = []
    for kind, task in registered_tasks().items():

        def evaluate(run, split, _kind=kind, **options):
            calls.append((_kind, run, split, options))
            return {"split": split, "data": "somewhere", "score": 0.25}

        module = sys.modules[task.train.__module__]
        monkeypatch.setattr(module, "TASK", dataclasses.replace(task, evaluate=evaluate))
        save_checkpoint(tmp_path / kind / "checkpoints", 1, {"w": torch.zeros(1)}, {"kind": kind})
        code, out, _ = _run(capsys, "eval", str(tmp_path / kind), "--json", "--device", "cpu")
        assert code == 0 and json.loads(out)["score"] == 0.25
    options = {"data": None, "data_dir": None, "device": "cpu", "runs_dir": "runs"}
    assert calls == [
        (kind, str(tmp_path / kind), "val" if kind == "text-generation" else "test", options)
        for kind in registered_tasks()
    ]
    code, out, _ = _run(capsys, "eval", str(tmp_path / "sentiment"), "--split", "train")
    assert code == 0 and calls[-1][2] == "train"
    assert out.splitlines() == [
        "train split of somewhere (sentiment run)",
        f"  {'score':<16} 0.2500",
    ]
    save_checkpoint(tmp_path / "odd" / "checkpoints", 1, {"w": torch.zeros(1)}, {"kind": "odd"})
    code, _, err = _run(capsys, "eval", str(tmp_path / "odd"))
    assert code == 2 and "no task makes 'odd' runs" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "image", "--model", "nope"], "unknown model"),
        (["train", "image", "--data", "nope"], "nope"),
        (["train", "image", "--lr", "-1"], "learning rate"),
        (["train", "image", "--batch-size", "0"], "batch size"),
        (["train", "image", "--epochs", "0"], "epochs"),
        (["train", "image", "--label-smoothing", "1.5"], "label smoothing"),
        (["train", "image", "--augment", "spin"], "spin"),
        (["train", "image", "--data", "folder:/does/not/exist"], "exist"),
        (["eval", "no-such-run"], "no run found"),
        (["train", "image", "--epochs", "x"], "not an integer"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code, _, err = _run(
        capsys, *argv, *(["--runs-dir", str(tmp_path)] if argv[0] != "frobnicate" else [])
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("striate: error:") and message in err
    assert "Traceback" not in err


def test_bad_images_and_checkpoints_leave_the_run_untouched(digits_run, tmp_path, capsys):
    before = _digest(digits_run)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    truncated = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for image, message in (
        (corrupt, "broken.png"),
        (truncated, "cut.jpg"),
        (tmp_path / "missing.png", "missing.png"),
    ):
        code, _, err = _run(capsys, "classify", str(digits_run), str(image))
        assert code == 2 and message in err and err.count("\n") == 1
    # a checkpoint whose metadata names another model
    ckpt = sorted((digits_run / "checkpoints").iterdir())[-1]
    other = tmp_path / "other"
    other.mkdir()
    for f in ckpt.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    meta = json.loads((other / "meta.json").read_text())
    meta["model"]["name"] = "resnet20"
    (other / "meta.json").write_text(json.dumps(meta))
    code, _, err = _run(capsys, "classify", str(other), str(corrupt))
    assert code == 2 and "does not fit" in err
    assert _digest(digits_run) == before


def test_folder_with_one_class_or_no_images(tmp_path, capsys):
    (tmp_path / "only" / "cat").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(tmp_path / "only" / "cat" / f"{i}.png")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    for folder, message in (("only", "class"), ("empty", "image")):
        code, _, err = _run(
            capsys,
            "train",
            "image",
            "--data",
            f"folder:{tmp_path / folder}",
            "--runs-dir",
            str(tmp_path / "runs"),
        )
        assert code == 2 and message in err.lower(), err


def test_python_dash_m_is_the_same_command(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "striate",
            "train",
            "image",
            "--model",
            "nope",
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_analyze_receptive_field_of_a_model_and_of_a_run(digits_run, capsys):
    code, out, _ = _run(capsys, "analyze", "receptive-field", "lenet5")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [row[-3] for row in rows][-1] == "32"  # C5 of the 32 px LeNet-5 sees the whole image
    code, out, _ = _run(capsys, "analyze", "receptive-field", str(digits_run))
    assert code == 0 and "32" in out
    code, _, err = _run(capsys, "analyze", "receptive-field", "no-such-model-or-run")
    assert code == 2 and err.count("\n") == 1
