"""``striate serve RUN [RUN ...]``: a local web page and JSON API for trained runs.

    striate serve runs/demo runs/char-lstm                 # http://127.0.0.1:8000
    striate serve runs/demo --host 0.0.0.0 --port 9000     # reachable from other machines

The server (:mod:`striate.serve`) needs the ``serve`` extra (``pip install
'striate[serve]'``). It listens on 127.0.0.1 (this machine only) unless ``--host`` says
otherwise, and says so when it starts.
"""

from __future__ import annotations

import argparse
import errno
import gc
import socket
from typing import Any

from striate.errors import StriateError


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from striate.serve.app import create_app
    except ImportError as exc:
        raise StriateError(
            f"striate serve needs the serve extra (pip install 'striate[serve]'): {exc}"
        ) from None
    if not 0 < args.port < 65536:
        raise StriateError(f"--port must be between 1 and 65535, not {args.port}")
    listening = listen(args.host, args.port)  # a taken port is refused before loading models
    app = create_app(args.runs, device=args.device, runs_dir=args.runs_dir)
    where = (
        "only this machine can connect; --host 0.0.0.0 shares it with the network"
        if args.host in ("127.0.0.1", "localhost", "::1")
        else "WARNING: other machines can connect"
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"striate: serving {', '.join(app.state.names)} on http://{shown}:{args.port} ({where})")
    print(f"striate: API documentation at http://{shown}:{args.port}/docs; Ctrl-C stops")
    # what is loaded now (libraries, models, the app) lives as long as the server: keep it out
    # of the garbage collector's full passes, each of which stalled every answer by ~100 ms
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listening])
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (``host``, ``port``), or one line saying why not (a port another
    program holds, an address this machine does not have, a name that does not resolve)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise StriateError(f"--host {host!r} is not an address of this machine: {exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn itself binds
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = (
            "; another program uses it: pick another --port"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise StriateError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    return sock


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``serve``."""
    p = commands.add_parser("serve", help="a web page and JSON API for trained runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run or checkpoint directories")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_serve)
