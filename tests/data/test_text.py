"""Text sources, the character vocabulary, stream batches and the memory tasks."""

from __future__ import annotations

import functools
import json
import math
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from striate.data.download import RemoteFile
from striate.data.sources import text as text_sources
from striate.data.sources.memory_tasks import AddingProblem, CopyTask
from striate.data.sources.text import describe_text_sources, load_text, split_text
from striate.data.text_batches import TokenStream
from striate.data.vocab import CharVocab, vocab_from_json
from striate.errors import StriateError

SHAKESPEARE_CHARS = 1_115_394

# -- sources ------------------------------------------------------------------------------


def test_shakespeare_from_the_shared_data_folder(shared_data):
    text = load_text("shakespeare", data_dir=shared_data, download=False)
    assert len(text) == SHAKESPEARE_CHARS
    assert text.startswith("First Citizen:")
    assert len(CharVocab.from_text(text)) == 65


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path):
    """A loopback HTTP server over ``tmp_path / "served"``; yields (folder, base url)."""
    root = tmp_path / "served"
    root.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_shakespeare_downloads_and_checks_its_checksum(shared_data, served, tmp_path, monkeypatch):
    root, url = served
    real = (shared_data / "tinyshakespeare" / "input.txt").read_bytes()
    (root / "good.txt").write_bytes(real)
    (root / "bad.txt").write_bytes(real[:-1] + b"!")
    sha = text_sources.SHAKESPEARE.sha256
    bad = RemoteFile("input.txt", (f"{url}/bad.txt",), sha256=sha)
    monkeypatch.setattr(text_sources, "SHAKESPEARE", bad)
    with pytest.raises(StriateError, match=r"input\.txt failed its checksum"):
        load_text("shakespeare", data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "tinyshakespeare" / "input.txt").exists()
    good = RemoteFile("input.txt", (f"{url}/missing.txt", f"{url}/good.txt"), sha256=sha)
    monkeypatch.setattr(text_sources, "SHAKESPEARE", good)
    assert len(load_text("shakespeare", data_dir=tmp_path / "data")) == SHAKESPEARE_CHARS
    assert (tmp_path / "data" / "tinyshakespeare" / "input.txt").read_bytes() == real


def test_shakespeare_missing_without_download_says_what_to_do(tmp_path):
    with pytest.raises(StriateError, match=r"input\.txt not found .*download enabled"):
        load_text("shakespeare", data_dir=tmp_path, download=False)


def test_python_stdlib_is_deterministic_and_substantial():
    first = load_text("python-stdlib")
    assert 500_000 < len(first) <= text_sources.STDLIB_MAX_CHARS
    assert "def " in first and first.startswith("# file: ")
    assert load_text("python-stdlib") == first
    small = load_text("python-stdlib", max_chars=10_000)
    assert len(small) <= 10_000 and small.endswith("\n") and first.startswith(small)


def test_file_source_and_plain_path(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("\ufeffhéllo\r\nworld\n".encode())
    assert load_text(f"file:{path}") == "héllo\nworld\n"
    assert load_text(str(path)) == "héllo\nworld\n"
    assert load_text(str(path), max_chars=8) == "héllo\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"notes\.txt is empty"),
        (b" \n\t\n", r"notes\.txt is empty"),
        (b"caf\xe9 latin-1", r"notes\.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"notes\.txt looks like a binary file"),
    ],
)
def test_bad_text_files_raise_one_clear_line(tmp_path, content, message):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(StriateError, match=message) as info:
        load_text(f"file:{path}")
    assert "\n" not in str(info.value)


def test_missing_file_directory_and_unknown_source(tmp_path):
    with pytest.raises(StriateError, match=r"text file .*nothing\.txt not found"):
        load_text(f"file:{tmp_path / 'nothing.txt'}")
    with pytest.raises(StriateError, match=r"is a directory"):
        load_text(str(tmp_path))
    with pytest.raises(StriateError, match=r"unknown text source 'shakespear' .*python-stdlib"):
        load_text("shakespear")
    with pytest.raises(StriateError, match=r"file: needs a path"):
        load_text("file:")


def test_split_is_contiguous_with_validation_last():
    train, val = split_text("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    assert split_text("abc", 0.0) == ("abc", "")
    with pytest.raises(StriateError, match="val_fraction"):
        split_text("abc", 1.0)
    with pytest.raises(StriateError, match="too short"):
        split_text("a", 0.5)


def test_sources_are_listed_and_described(tmp_path):
    assert text_sources.text_sources() == ["python-stdlib", "shakespeare", "file:PATH"]
    rows = {row["name"]: row for row in describe_text_sources(tmp_path)}
    assert rows["python-stdlib"]["present"] is True
    assert rows["shakespeare"]["present"] is False
    assert rows["shakespeare"]["where"].endswith("tinyshakespeare/input.txt")


# -- vocabulary ---------------------------------------------------------------------------


def test_char_vocab_round_trip_and_json():
    text = "to be, or not to be: 😀 é"
    vocab = CharVocab.from_text(text)
    assert vocab.chars == sorted(set(text)) and len(vocab) == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text and vocab.decode(ids.tolist()) == text
    saved = json.loads(json.dumps(vocab.to_json()))
    assert CharVocab.from_json(saved) == vocab and vocab_from_json(saved) == vocab
    assert vocab_from_json(list(vocab.chars)) == vocab


def test_char_vocab_names_unknown_characters():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(StriateError, match=r"the prime has 2 char.*vocabulary of 3: 'x', 'z'"):
        vocab.encode("zaxz", what="the prime")
    with pytest.raises(StriateError, match=r"ids must be integers in 0\.\.2"):
        vocab.decode([0, 3])
    with pytest.raises(StriateError):
        CharVocab.from_text("")


# -- stream batches -----------------------------------------------------------------------


def test_stream_targets_shift_and_windows_are_contiguous():
    corpus = torch.arange(1000)
    stream = TokenStream(corpus, batch_size=4, seq_len=10, seed=3)
    assert len(stream) == 24
    for epoch in (0, 1):
        windows = list(stream.epoch(epoch))
        assert len(windows) == len(stream)
        xs = torch.cat([x for x, _ in windows], dim=1)
        ys = torch.cat([y for _, y in windows], dim=1)
        assert xs.shape == (4, 240) and torch.equal(ys, xs + 1)
        # each row reads one contiguous piece of the corpus, across consecutive windows
        assert torch.equal(xs[:, 1:] - xs[:, :-1], torch.ones(4, 239, dtype=torch.long))
        assert torch.equal(xs[1:, 0] - xs[:-1, 0], torch.full((3,), 241))
    offsets = {stream.offset(e) for e in range(20)}
    assert len(offsets) > 1 and all(0 <= o <= stream.slack for o in offsets)
    assert stream.slack >= 9
    fixed = TokenStream(corpus, 4, 10, random_offset=False)
    assert {fixed.offset(e) for e in range(5)} == {0}


def test_stream_start_resumes_the_same_windows():
    stream = TokenStream(torch.randint(0, 50, (5000,)), batch_size=8, seq_len=16, seed=7)
    full = list(stream.epoch(2))
    resumed = list(stream.epoch(2, start=5))
    assert len(resumed) == len(full) - 5
    for (x, y), (rx, ry) in zip(full[5:], resumed, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_stream_ranks_share_the_rows():
    corpus = torch.arange(2000)
    whole = next(TokenStream(corpus, 4, 8, seed=1).epoch(3))[0]
    parts = [
        next(TokenStream(corpus, 4, 8, seed=1, rank=r, world_size=2).epoch(3))[0] for r in (0, 1)
    ]
    assert torch.equal(torch.cat(parts), whole)


def test_stream_too_short_corpus_is_one_clear_line():
    with pytest.raises(
        StriateError, match=r"corpus of 40 characters is too short for batch 4 x sequence 10"
    ):
        TokenStream(torch.arange(40), batch_size=4, seq_len=10)
    assert len(TokenStream(torch.arange(44), batch_size=4, seq_len=10)) == 1


# -- memory tasks -------------------------------------------------------------------------


def test_adding_problem_shapes_markers_and_targets():
    task = AddingProblem(lag=50, batch_size=64, steps_per_epoch=3, seed=0)
    batches = list(task.epoch(0))
    assert len(batches) == len(task) == 3
    x, y = batches[0]
    assert x.shape == (64, 50, 2) and y.shape == (64, 1) and x.dtype == torch.float32
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    first = markers.argmax(1)
    assert (first < 5).all() and (markers[:, 25:].sum(1) == 1).all()
    assert torch.allclose((x[..., 0] * markers).sum(1, keepdim=True), y)


def test_adding_problem_baseline_mse_is_one_sixth():
    task = AddingProblem(lag=20, batch_size=1000, steps_per_epoch=4, seed=1)
    targets = torch.cat([y for _, y in task.epoch(0)])
    mse = ((targets - 1.0) ** 2).mean().item()
    assert abs(mse - task.baseline_mse) < 0.02


def test_adding_problem_is_deterministic_with_a_separate_validation_stream():
    task = AddingProblem(lag=30, batch_size=8, steps_per_epoch=4, seed=5)
    again = AddingProblem(lag=30, batch_size=8, steps_per_epoch=4, seed=5)
    assert torch.equal(list(task.epoch(1))[2][0], next(again.epoch(1, start=2))[0])
    assert not torch.equal(next(task.epoch(0))[0], next(task.epoch(1))[0])
    val = task.validation(2)
    assert len(val) == 2
    assert torch.equal(next(val.epoch(0))[0], next(val.epoch(7))[0])  # fixed held-out set
    assert not torch.equal(next(val.epoch(0))[0], next(task.epoch(0))[0])
    with pytest.raises(StriateError, match="lag of at least 2"):
        AddingProblem(lag=1, batch_size=8, steps_per_epoch=1)


def test_copy_task_shapes_recall_and_determinism():
    task = CopyTask(lag=20, n_symbols=8, length=5, batch_size=16, steps_per_epoch=2, seed=2)
    x, y = next(task.epoch(0))
    assert task.seq_len == 2 * 5 + 20 + 1
    assert x.shape == y.shape == (16, task.seq_len) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, task.recall], x[:, :5])
    assert ((x[:, :5] >= 1) & (x[:, :5] <= 8)).all()
    assert (x[:, 25] == task.delimiter).all()
    assert (x[:, 5:25] == task.blank).all() and (x[:, 26:] == task.blank).all()
    assert (y[:, :26] == task.blank).all()
    assert x.max() < task.n_inputs and y.max() < task.n_classes
    assert task.chance_recall_loss == pytest.approx(math.log(8))
    again = CopyTask(lag=20, n_symbols=8, length=5, batch_size=16, steps_per_epoch=2, seed=2)
    assert torch.equal(next(again.epoch(0))[0], x)
    assert not torch.equal(next(task.validation().epoch(0))[0], x)
