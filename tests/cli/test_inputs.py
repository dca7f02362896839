"""Inputs people type and inputs that should never have been accepted: options anywhere,
numbers that make no sense, sizes that cannot be allocated, paths of the wrong kind, runs
with damaged files, and a folder smaller than the batch."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from striate.apps.image_classification import fitting_batch_size
from striate.artifacts.checkpoint import load_checkpoint, save_checkpoint
from striate.artifacts.run_dir import RunDir
from striate.cli.main import build_parser, main
from striate.data.sources.folder import FolderIndex
from striate.errors import StriateError


def _parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_options_may_stand_between_positionals():
    args = _parse("translate", "RUN", "--beam", "2", "a man rides", "--json", "a dog")
    assert (args.run, args.sentences, args.beam, args.json) == (
        "RUN",
        ["a man rides", "a dog"],
        2,
        True,
    )
    args = _parse("predict-sentiment", "RUN", "--json", "text")
    assert (args.run, args.texts, args.json) == ("RUN", ["text"], True)
    args = _parse("classify", "--top-k", "3", "RUN", "a.png", "--json", "b.png")
    assert (args.run, args.images, args.top_k) == ("RUN", ["a.png", "b.png"], 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "image", "--lr", "nan"], "not a finite number"),
        (["train", "image", "--momentum", "inf"], "not a finite number"),
        (["train", "image", "--val-fraction", "1.5"], "validation fraction must be in [0, 1]"),
        (["train", "image", "--image-size", "0"], "image size must be at least 1, got 0"),
        (["train", "text", "--hidden", "10000000000"], "hidden size 10000000000 is over the limit"),
        (["train", "image", "--seed", str(2**70)], "seed"),
        (["sample", "RUN", "--top-k", "-1"], "top-k must not be negative"),
        (["sample", "RUN", "--temperature=-inf"], "not a finite number"),
        (["translate", "RUN", "x", "--max-len", "0"], "maximum length must be at least 1"),
        (["translate", "RUN", "x", "--length-penalty", "nan"], "not a finite number"),
        (["train", "image", "--epochs", "1e3"], "not an integer"),
        (["train", "image", "--lr", "1e308"], "learning rate must be in (0, 1e+06], got 1e+308"),
        (["train", "image", "--weight-decay", "1e40"], "weight decay must be in [0, 1e+06]"),
    ],
)
def test_numbers_that_make_no_sense_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        (["train", "text", "--sample-every", "0"], "sample_every"),
        (["train", "translate", "--val-bleu-samples", "0"], "val_bleu_samples"),
        (["train", "translate", "--teacher-forcing-steps", "0"], "teacher_forcing_steps"),
        (["train", "image", "--warmup-steps", "0"], "warmup_steps"),
        (["sample", "RUN", "--top-k", "0"], "top_k"),
    ],
)
def test_zero_is_accepted_where_it_means_none_or_all(argv, dest):
    # what the configuration takes as "off" (no samples, no BLEU, no warm-up) or "all"
    assert getattr(_parse(*argv), dest) == 0


def test_paths_of_the_wrong_kind_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    (tmp_path / "loop").symlink_to("loop")
    cases = {
        ("report", "RUN", "--out", str(tmp_path)): "is a folder",
        ("report", "RUN", "--out", str(a_file / "r.html")): "Not a directory",
        ("eval", "RUN", "--runs-dir", str(a_file)): "is a file, not a folder",
        ("eval", "RUN", "--data-dir", str(tmp_path / "loop")): "symbolic links",
        ("analyze", "gates", "RUN", "--text", str(tmp_path)): "is a folder, not a file",
        ("train", "image", "--name", "../elsewhere"): "inside the runs directory",
        ("train", "text", "--name", str(tmp_path)): "inside the runs directory",
    }
    for argv, message in cases.items():
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_image_folder_that_loops_through_a_symlink_is_refused(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("L", (4, 4)).save(tmp_path / label / "0.png")
    (tmp_path / "a" / "again").symlink_to("..")
    with pytest.raises(StriateError, match="loops"):
        FolderIndex.scan(tmp_path)
    (tmp_path / "a" / "again").unlink()
    (tmp_path / "self").symlink_to("self")
    with pytest.raises(StriateError, match="cannot read"):
        FolderIndex.scan(tmp_path)
    with pytest.raises(StriateError, match="loops or leads nowhere"):
        FolderIndex.scan(tmp_path / "self")


@pytest.mark.parametrize(
    "content", [b"[1, 2]", b'"text"', b"null", b"not json {", b"\xff\xfe", b""]
)
def test_run_files_of_the_wrong_shape_are_one_line(tmp_path, content):
    import torch

    ckpt = save_checkpoint(tmp_path / "checkpoints", 1, {"w": torch.zeros(2)}, {"kind": "x"})
    (ckpt / "meta.json").write_bytes(content)
    with pytest.raises(StriateError, match="corrupt checkpoint metadata"):
        load_checkpoint(ckpt)
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(StriateError, match="corrupt run configuration"):
        RunDir(tmp_path).read_config()


def test_checkpoint_without_its_weights_is_one_line(tmp_path):
    import torch

    ckpt = save_checkpoint(tmp_path, 3, {"w": torch.zeros(2)}, {"kind": "x"})
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(StriateError, match=r"incomplete checkpoint .*model.safetensors missing"):
        load_checkpoint(ckpt)
    assert json.loads((ckpt / "meta.json").read_text())["step"] == 3  # left as it was


def test_batch_larger_than_the_split_uses_the_largest_that_fits(capsys):
    assert fitting_batch_size(128, 1000) == 128
    assert capsys.readouterr().err == ""
    assert fitting_batch_size(128, 43) == 43
    assert fitting_batch_size(128, 43, world_size=2) == 42
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "batch size 128 is larger than the 43 training" in err


def test_folder_of_48_images_trains_with_the_default_batch(tmp_path, capsys):
    for label in ("a", "b"):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(24):
            shade = 10 * i if label == "a" else 250 - 10 * i
            Image.new("L", (8, 8), shade).save(tmp_path / "pics" / label / f"{i}.png")
    argv = ["train", "image", "--data", f"folder:{tmp_path / 'pics'}", "--epochs", "1"]
    code = main([*argv, "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--name", "r"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert [line for line in err.splitlines() if "batch size 128" in line] == [
        "striate: batch size 128 is larger than the 40 training images; using batches of 40"
    ]


def test_sizes_that_cannot_be_allocated_are_refused_first(capsys, tmp_path):
    import torch

    from striate.data.transforms.functional import to_square
    from striate.models import create_model
    from striate.nn.recurrent import Recurrent

    with pytest.raises(StriateError, match=r"hidden size 16384 .* over the limit 1,073,741,824"):
        Recurrent("lstm", 100, 16384, num_layers=64)
    with pytest.raises(StriateError, match="over the limit"):
        create_model("neocognitron", 10, 1, 32, widths=[100_000] * 3)
    with pytest.raises(StriateError, match=r"100000x100000 pixels .* over the limit of 4 GiB"):
        to_square(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 100_000)
    assert main(["train", "image", "--image-size", "4096", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4096x4096 pixels" in err and "limit of 4 GiB" in err


def test_checkpoint_metadata_without_a_key_is_one_line(tmp_path):
    import torch

    from striate.apps.image_classification import load_classifier

    ckpt = save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)}, {"kind": "image-classification"})
    with pytest.raises(StriateError, match=r"meta.json: it has no 'model'"):
        load_classifier(ckpt)


def test_a_picture_smaller_than_the_runs_model_takes_is_one_line(tmp_path, capsys):
    import torch

    from striate.models import create_model
    from striate.models.classifier import ImageClassifier

    net = create_model("lenet5", 10, 1, 32)
    model = ImageClassifier(net, torch.zeros(1), torch.ones(1))
    meta = {
        "kind": "image-classification",
        "model": net.striate_config,
        "classes": [str(i) for i in range(10)],
        "input": {"channels": 1, "image_size": 32},
        "normalization": {"mean": [0.0], "std": [1.0]},
        "data": "digits",
    }
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints", 1, model.state_dict(), meta)
    for command in ("rf-picture", "receptive-field"):
        argv = ["analyze", command, str(ckpt), "--image-size", "3"]
        assert (
            main([*argv, *(["--out", str(tmp_path / "f.png")] if command == "rf-picture" else [])])
            == 2
        )
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "needs images of at least 28px, got 3px" in err, err


@pytest.mark.parametrize("damage", ["checkpoints is a file", "checkpoints loops", "metrics dir"])
def test_a_run_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, damage):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")
    if damage == "checkpoints is a file":
        (run / "checkpoints").write_text("x")
    elif damage == "checkpoints loops":
        (run / "checkpoints").symlink_to("checkpoints")
    else:
        (run / "metrics.jsonl").mkdir()
    run_dir = RunDir(run)
    with pytest.raises(StriateError, match=r"not a folder|is a folder, not a file"):
        run_dir.make_writable()
    # through the command line: a run stopped before its first checkpoint resumes from step 0,
    # and a damaged one is refused before the first step, not after an epoch
    (run / "config.json").write_text(json.dumps({"kind": "image-classification"}))
    code = main(["train", "image", "--resume", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert not list(run.glob("checkpoints/step-*"))


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (OSError(28, "No space left on device", "runs/r/x.tmp"), 1, "No space left on device"),
        (PermissionError(13, "Permission denied", "out.onnx"), 1, "Permission denied: out.onnx"),
        (MemoryError(), 1, "out of memory (MemoryError)"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                "can't allocate memory: you tried to allocate 402653184000 bytes."
            ),
            1,
            "out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate",
        ),
        (BrokenPipeError(32, "Broken pipe"), 141, None),
    ],
)
def test_what_the_machine_refuses_is_one_line(monkeypatch, capsys, raised, code, line):
    import striate.cli.main as cli

    def refuse(args):
        raise raised

    monkeypatch.setattr(cli, "_models", refuse)
    assert main(["models"]) == code
    err = capsys.readouterr().err
    if line is None:
        assert err == ""  # the reader went away: nothing to say
    else:
        assert err.count("\n") == 1 and err.startswith("striate: error: ") and line in err, err


def test_a_bug_keeps_its_traceback(monkeypatch):
    import striate.cli.main as cli

    def bug(args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(cli, "_models", bug)
    with pytest.raises(RuntimeError, match="shapes"):
        main(["models"])
