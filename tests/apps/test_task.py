"""The shared shape of the task apps (apps/_task.py): confusion counts, evaluation reports,
length-ordered chunks, eval mode restored, and the one greedy-or-beam choice."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from striate.apps import (
    captioning,
    image_classification,
    sentiment,
    text_generation,
    translation,
    video,
)
from striate.apps._task import (
    Task,
    classification_counts,
    confusion_matrix,
    evaluating,
    length_sorted_chunks,
    registered_tasks,
    task_for,
    write_report,
)
from striate.errors import StriateError
from striate.nn.decoding import beam_search, decode, greedy_decode
from striate.predict import predictor_class


def test_confusion_counts_rows_are_truth_columns_predictions():
    truth = torch.tensor([0, 0, 1, 2, 2, 2])
    guess = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(truth, guess, 4)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    _, counts = classification_counts(truth, guess, ["a", "b", "c", "d"])
    assert counts["accuracy"] == pytest.approx(4 / 6)
    assert counts["per_class_accuracy"] == pytest.approx({"a": 0.5, "b": 1, "c": 2 / 3, "d": 0})
    assert counts["confusion"] == matrix.tolist()


def test_write_report_writes_the_json_and_the_confusion_picture(tmp_path):
    matrix = torch.tensor([[3, 1], [0, 2]])
    report = write_report(tmp_path, "val", {"accuracy": 5 / 6}, True, (matrix, ["x", "y"]))
    assert json.loads((tmp_path / "eval-val.json").read_text()) == {"accuracy": 5 / 6}
    assert report["confusion_png"] == str(tmp_path / "confusion-val.png")
    assert (tmp_path / "confusion-val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_report(tmp_path / "none", "test", {"a": 1}, write=False) == {"a": 1}
    assert not (tmp_path / "none").exists()


def test_a_run_that_cannot_be_written_still_gets_its_figures(tmp_path, capsys, monkeypatch):
    import errno

    import striate.apps._task as task_module

    def read_only(path, value):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(task_module, "write_json", read_only)  # a run on a read-only disk
    matrix = torch.tensor([[1, 0], [0, 1]])
    report = write_report(tmp_path, "test", {"accuracy": 1.0}, True, (matrix, ["x", "y"]))
    assert report == {"accuracy": 1.0}  # the figures, without a picture it did not save
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not saved (Read-only file system" in err, err
    assert not list(tmp_path.iterdir())


def test_length_sorted_chunks_skip_blank_items_and_keep_every_other_once():
    lengths = [5, None, 2, 9, 2, None, 7]
    chunks = list(length_sorted_chunks(lengths, 2))
    assert all(len(c) <= 2 for c in chunks)
    flat = [i for c in chunks for i in c]
    assert sorted(flat) == [0, 2, 3, 4, 6]
    assert [lengths[i] for i in flat] == sorted(lengths[i] for i in flat)


def test_evaluating_restores_the_mode_even_after_an_error():
    model = nn.Dropout(0.5).train()
    try:
        with evaluating(model):
            assert not model.training
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert model.training


def test_decode_is_greedy_for_beam_one_and_beam_search_otherwise():
    torch.manual_seed(0)
    table = torch.randn(7, 7).log_softmax(-1)

    def step(tokens, state):
        return table[tokens] + state, state

    state = torch.zeros(3, 1)
    ids, scores = decode(step, state, 3, 0, 6, beam=1, max_len=5)
    assert ids == greedy_decode(step, state, 3, 0, 6, 5) and scores == [None] * 3
    ids, scores = decode(step, state, 3, 0, 6, beam=1, max_len=5, scores=True)
    assert ids == greedy_decode(step, state, 3, 0, 6, 5)  # beam 1 is greedy
    assert all(isinstance(s, float) for s in scores)
    assert decode(step, state, 3, 0, 6, beam=3, max_len=5, scores=True) == tuple(
        map(list, beam_search(step, state, 3, 0, 6, 3, 5, return_scores=True))
    )


def test_every_task_module_declares_one_task_and_is_registered():
    modules = (image_classification, text_generation, sentiment, translation, captioning, video)
    tasks = registered_tasks()
    assert sorted(tasks) == sorted(module.KIND for module in modules)
    for module in modules:
        task = module.TASK
        assert isinstance(task, Task) and task.kind == module.KIND
        # its predictor: the module of the same name in striate.predict, with its words
        predictor = predictor_class(task.kind)
        assert predictor.__module__ == module.__name__.replace(".apps.", ".predict.")
        assert (predictor.kind, predictor.task) == (task.kind, task.what)
        assert tasks[module.KIND] is task and task_for(module.KIND) is task
        assert task.train is module.train and module.resume == task.resume
        assert task.evaluate is module.evaluate
    assert text_generation.TASK.eval_split == "val" and video.TASK.eval_split == "test"
    with pytest.raises(StriateError, match="no task makes 'weird' runs"):
        task_for("weird")
