"""Standard streams that are not what a terminal gives: an encoding that cannot show every
character, a stream the shell closed, and bytes piped in that are not text."""

from __future__ import annotations

import io
import sys

import pytest

from striate.cli.common import read_lines
from striate.cli.main import _usable_streams, main
from striate.errors import StriateError


def _ascii_stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="ascii", write_through=True)


def test_characters_the_encoding_cannot_show_are_escaped_not_fatal(monkeypatch):
    out, err = _ascii_stream(), _ascii_stream()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    # the error names a path with a character ASCII lacks; before, printing it raised
    assert main(["classify", "/nonexistent/run-café", "x.png"]) == 2
    assert b"caf\\xe9" in err.buffer.getvalue()
    _usable_streams()
    print("\u2588\u2588 café")
    assert out.buffer.getvalue() == b"\\u2588\\u2588 caf\\xe9\n"


def test_closed_stdout_and_stderr_drop_output_instead_of_failing(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["models", "lenet*"]) == 0
    assert main(["models", "no-such-model-*"]) == 2  # the error line goes nowhere, quietly
    assert sys.stdout is not None and sys.stderr is not None


def test_reading_a_closed_stdin_is_one_line(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(StriateError, match=r"^standard input is closed$"):
        read_lines("-")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"good\x00bad\n", "standard input looks like a binary file"),
        (b"caf\xe9 \xff\xfe\n", "standard input is not UTF-8 text (byte 0xe9 at offset 3)"),
    ],
)
def test_stdin_is_checked_like_a_file(monkeypatch, tmp_path, data, message):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(StriateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_lines("-")
    path = tmp_path / "same.txt"  # the same bytes in a file are refused the same way
    path.write_bytes(data)
    with pytest.raises(StriateError, match=r"binary file|not UTF-8 text"):
        read_lines(str(path))


def test_text_on_stdin_is_read_as_before(monkeypatch):
    stream = io.TextIOWrapper(io.BytesIO("\ufeffone\r\n\r\n  two  \n".encode()))
    monkeypatch.setattr(sys, "stdin", stream)
    assert read_lines("-") == ["one", "two"]
