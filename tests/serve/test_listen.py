"""``striate serve`` on a port or host it cannot have: one line, before any model loads."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from striate.cli.main import main


def test_a_taken_port_is_one_line_before_loading(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the run does not exist: the port is refused first, without loading anything
        assert main(["serve", str(tmp_path / "no-run"), "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no "serving on ..." announced for a server that never listened
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert "pick another --port" in err


def test_a_host_that_does_not_resolve_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--host", "not a host!"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host 'not a host!' is not an address" in err, err
