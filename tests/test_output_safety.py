"""What an output target may be, and a full disk: every written file is all or nothing.

A full disk is simulated by making the one low-level write fail with ``ENOSPC``; every
case checks that the error is one line (an ``OSError`` or ``StriateError``) and that no
temporary file or folder is left beside the target.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

import striate.atomic
from striate.apps import captioning as cap
from striate.apps import recurrent_analysis as ra
from striate.artifacts import checkpoint as ckpt
from striate.atomic import write_bytes, write_text
from striate.cli.main import main
from striate.errors import StriateError
from striate.weights import convert_weights


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(path: Path, data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])  # half of it got there, then the disk was full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(striate.atomic, "_write_file", no_space)


def _one_line(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err


# --- what is at the target ---------------------------------------------------------------


def test_a_written_file_gets_the_usual_permissions_not_the_temporarys(tmp_path):
    fresh = tmp_path / "new.json"
    write_text(fresh, "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~striate.atomic.current_umask()
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    write_text(kept, "new")  # a replaced file keeps its permissions
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"


def test_a_fifo_is_refused_and_left_as_it_was(tmp_path):
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    with pytest.raises(StriateError, match="FIFO, not a regular file") as caught:
        write_bytes(fifo, b"model")
    assert "\n" not in str(caught.value)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "out.html").mkdir()
    with pytest.raises(StriateError, match="directory"):
        write_text(tmp_path / "out.html", "<p>")
    assert (tmp_path / "out.html").is_dir()


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "target.onnx"
    real.write_bytes(b"old")
    link = tmp_path / "link.onnx"
    link.symlink_to(real.name)
    write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == "target.onnx"
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.onnx", "target.onnx"]


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"Not a directory.*notes\.txt is a file"):
        write_bytes(blocker / "sub" / "x.bin", b"x")
    assert blocker.read_text() == "x"


# --- a full disk -------------------------------------------------------------------------


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        write_text(target, "new" * 1000)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
         'space left on device" })', errno.ENOSPC),
        ("No space left on device (os error 28)", errno.ENOSPC),
        ("something else went wrong", None),
    ],
)  # fmt: skip
def test_a_failed_checkpoint_save_is_an_oserror_and_leaves_no_temporary(
    tmp_path, monkeypatch, message, code
):
    def failing(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError(message)

    monkeypatch.setattr(ckpt, "save_file", failing)
    with pytest.raises(OSError) as caught:
        ckpt.save_checkpoint(tmp_path / "checkpoints", 7, {"w": torch.ones(3)}, {"kind": "x"})
    assert caught.value.errno == code
    assert "\n" not in str(caught.value)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def _pth(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


def test_convert_weights_on_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    source = _pth(tmp_path / "in.pth", {"w": torch.randn(64, 64)})
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    _full_disk(monkeypatch)
    assert main(["convert-weights", str(source), str(out_dir / "out.safetensors")]) != 0
    err = capsys.readouterr().err
    _one_line(err)
    assert "No space left on device" in err
    assert list(out_dir.iterdir()) == []


def test_convert_weights_refuses_a_sparse_tensor_by_name(tmp_path, capsys):
    source = _pth(tmp_path / "sparse.pth", {"dense": torch.ones(2), "w": torch.eye(3).to_sparse()})
    with pytest.raises(StriateError, match="'w' is sparse_coo, not dense"):
        convert_weights(source, tmp_path / "out.safetensors")
    assert main(["convert-weights", str(source), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "'w'" in err
    assert not (tmp_path / "out.safetensors").exists()


def test_convert_weights_says_the_parent_is_a_file(tmp_path, capsys):
    source = _pth(tmp_path / "ok.pth", {"w": torch.ones(2)})
    (tmp_path / "some_file.txt").write_text("x")
    target = tmp_path / "some_file.txt" / "x.safetensors"
    assert main(["convert-weights", str(source), str(target)]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "Not a directory" in err and "some_file.txt is a file" in err
    assert "File exists" not in err


def test_convert_weights_follows_a_symlink_and_refuses_a_fifo(tmp_path):
    source = _pth(tmp_path / "ok.pth", {"w": torch.arange(4.0)})
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"old")
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    convert_weights(source, link)
    assert link.is_symlink()
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(real))["w"], torch.arange(4.0))
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(StriateError, match="FIFO"):
        convert_weights(source, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --- two outputs that must not be one file ------------------------------------------------


def test_gates_refuses_an_out_that_is_not_html(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(StriateError, match=r"HTML page, not 'g\.png'"):
        ra.gates(tmp_path / "no-run", text, out=tmp_path / "g.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_attention_pictures_of_images_of_one_name_are_distinct(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(cap, "locate_checkpoint", lambda r, d: (run, run / "checkpoints"))
    images = ["in/d.png", "in/x/d.png", "in/d-2.png", "other/D.png", "e.png"]
    paths = cap.attention_picture_paths("run", images)
    names = [p.name for p in paths]
    assert names == [
        "attention-d.png",
        "attention-d-2.png",
        "attention-d-2-2.png",
        "attention-D-3.png",
        "attention-e.png",
    ]
    assert all(p.parent == run / "analysis" for p in paths)


# --- export and report on a tiny image run ------------------------------------------------


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    from striate.apps import image_classification as ic
    from striate.engine.loop import EngineConfig

    root = tmp_path_factory.mktemp("output-safety-runs")
    config = ic.ImageTrainConfig(
        model="lenet5", data="digits", runs_dir=str(root), name="image",
        engine=EngineConfig(epochs=1, batch_size=64, max_steps=2, progress=False, log_every=1),
    )  # fmt: skip
    return ic.train(config).run


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(
    image_run, tmp_path, monkeypatch, capsys, fmt
):
    from striate.export import writers

    def no_space(path: Path, data: bytes) -> None:
        Path(path).write_bytes(data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(writers, "_write", no_space)
    out = tmp_path / "full" / "x.model"
    argv = ["export", str(image_run), "--format", fmt, "--out", str(out), "--no-check"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    _one_line(err)
    assert "No space left on device" in err
    assert list(out.parent.iterdir()) == []


def test_export_refuses_a_fifo_and_follows_a_symlink(image_run, tmp_path, capsys):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    argv = ["export", str(image_run), "--format", "torchscript", "--no-check"]
    assert main([*argv, "--out", str(fifo)]) == 2
    _one_line(capsys.readouterr().err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    real = tmp_path / "real.pt"
    real.write_bytes(b"old")
    (tmp_path / "link.pt").symlink_to(real.name)
    assert main([*argv, "--out", str(tmp_path / "link.pt")]) == 0
    assert (tmp_path / "link.pt").is_symlink()
    assert real.read_bytes()[:2] == b"PK"  # a TorchScript zip now, through the link
    torch.jit.load(str(real))


def test_report_elsewhere_writes_only_the_html(image_run, tmp_path, monkeypatch):
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "curves.png").write_bytes(b"the user's own")
    assert main(["report", str(image_run), "--out", str(folder / "x.html")]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "x.html"]
    assert (folder / "curves.png").read_bytes() == b"the user's own"
    assert "data:image/png;base64," in (folder / "x.html").read_text(encoding="utf-8")
    _full_disk(monkeypatch)  # the page itself cannot be written: nothing is left
    with pytest.raises(OSError):
        from striate.apps.report import report

        report(image_run, folder / "y.html")
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "x.html"]
