"""Load on ``striate serve``: N concurrent clients on loopback, for a bounded time, against a
served LeNet-5 (classify) and a served char-LSTM (streamed sampling).

    python benchmarks/bench_serve.py                      # trains two tiny runs first
    python benchmarks/bench_serve.py --clients 16 --seconds 10 --image-run runs/demo
    python benchmarks/bench_serve.py --quick              # a smoke run: checks it works

The server is ``striate serve`` in its own process (its peak memory is its VmHWM). Phase 1:
``--clients`` clients post a 28 x 28 drawing to ``/api/NAME/predict`` back to back for
``--seconds``. Phase 2: ``--stream-clients`` clients stream 200 characters each from
``/api/NAME/stream``, back to back for ``--seconds``; the time to the first streamed
character is from sending the request to receiving the first ``data:`` event. Each client
holds one keep-alive connection, and all of them run in this process on a light client
(:class:`_Connection`), whose CPU per request is reported. Prints one JSON line:
requests/s, p50/p99/p99.9 latency, errors, first-character latency, the server's peak
memory, its HTTP stack, and the machine's load average (the figures are measured under
whatever else runs). Targets: classify p99 < 50 ms at 16 clients on 2 cores; first
streamed character < 100 ms. The server batches concurrent classify requests
(:mod:`striate.serve.batching`).
Its ``rows`` are the figures of the results table (``results_table.py``). ``--quick``: 2 s per
phase, 4 + 2 clients and a small char-LSTM, a smoke run of about a minute, not the result.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from _common import emit, row
from striate.serve.batching import inference_threads


def _server_stack() -> str:
    """The event loop and HTTP parser uvicorn picks in this environment (the server's)."""
    from importlib.util import find_spec

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return f"uvicorn, {loop}, {'httptools' if find_spec('httptools') else 'h11'}"


def _train_runs(root: Path, hidden: int = 512) -> tuple[Path, Path]:
    """A LeNet-5 and a char-LSTM (2 layers of ``hidden``, by default the default 512), 2 steps
    each: speed does not depend on how well they learned."""
    from striate.apps import image_classification as ic
    from striate.apps import text_generation as tg
    from striate.engine.loop import EngineConfig

    engine = {"epochs": 1, "max_steps": 2, "progress": False, "device": "cpu", "log_every": 1}
    image = ic.train(
        ic.ImageTrainConfig(
            model="lenet5",
            data="digits",
            name="lenet5",
            runs_dir=str(root),
            engine=EngineConfig(**engine),
        )
    )
    text = tg.train(
        tg.TextTrainConfig(
            data="python-stdlib",
            max_chars=200_000,
            hidden=hidden,
            name="char-lstm",
            sample_every=0,
            runs_dir=str(root),
            engine=EngineConfig(**engine, batch_size=8),
        )
    )
    return image.run, text.run


def _drawing() -> str:
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=255, width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Connection:
    """A minimal HTTP/1.1 client on one keep-alive connection: the load generator.

    A load generator must cost little next to the server it measures (wrk and hey are
    compiled programs for that reason). On 2 cores, 16 httpx clients in one process took a
    whole core of their own and queued requests in their own event loop: they reported a
    p99 of 185 ms while the server answered at about 14 ms (measured from inside the ASGI
    app). This client sends requests prepared once and reads the answers with asyncio's
    streams, at about 0.06 ms of CPU per request; each request's latency is from writing
    it to having read its whole answer.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        return cls(*await asyncio.open_connection(host, port))

    @staticmethod
    def request(host: str, path: str, body: dict) -> bytes:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    async def head(self, request: bytes) -> tuple[int, dict[bytes, bytes]]:
        """Send ``request``; the answer's status and headers (names lower-cased)."""
        self.writer.write(request)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        return status, {k.strip().lower(): v.strip() for k, v in headers.items()}

    async def body(self, headers: dict[bytes, bytes]) -> bytes:
        """A whole answer's body (``Content-Length`` or chunked)."""
        if b"content-length" in headers:
            return await self.reader.readexactly(int(headers[b"content-length"]))
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        """The chunks of a chunked answer, as they arrive."""
        while size := int((await self.reader.readline()).strip(), 16):
            yield (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


async def _drive(
    host: str, port: int, clients: int, seconds: float, exchange: Callable[[_Connection], Any]
) -> tuple[float, float]:
    """``clients`` connections, each awaiting ``exchange(connection)`` (one request and its
    answer) back to back for ``seconds``: (wall seconds, this process's CPU seconds)."""
    end = time.perf_counter() + seconds

    async def client() -> None:
        connection = await _Connection.open(host, port)
        try:
            while time.perf_counter() < end:
                await exchange(connection)
        finally:
            connection.close()

    cpu, begin = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - begin, time.process_time() - cpu


async def _classify_load(host: str, port: int, path: str, clients: int, seconds: float) -> dict:
    request = _Connection.request(host, path, {"inputs": _drawing(), "options": {"top_k": 5}})
    latencies: list[float] = []
    errors = 0

    async def exchange(connection: _Connection) -> None:
        nonlocal errors
        start = time.perf_counter()
        status, headers = await connection.head(request)
        answer = await connection.body(headers)
        if status == 200 and len(json.loads(answer)["results"][0]["top"]) == 5:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1

    return _latencies(
        clients, latencies, errors, *await _drive(host, port, clients, seconds, exchange)
    )


def _latencies(
    clients: int, latencies: list[float], errors: int, elapsed: float, cpu: float
) -> dict:
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * _percentile(latencies, 0.5), 2),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 2),
        "p999_ms": round(1000 * _percentile(latencies, 0.999), 2),
        "errors": errors,
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, len(latencies)), 3),
    }


async def _classify_load_httpx(url: str, clients: int, seconds: float) -> dict:
    """The same load from ``clients`` httpx clients sharing one event loop (``--httpx-too``):
    what a Python script's clients see, and how much of it is the client's own queueing."""
    body = {"inputs": _drawing(), "options": {"top_k": 5}}
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            start = time.perf_counter()
            try:
                ok = (await http.post(url, json=body)).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        cpu, begin = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu
    return _latencies(clients, latencies, errors, elapsed, cpu)


async def _stream_load(
    host: str, port: int, path: str, clients: int, seconds: float, length: int
) -> dict:
    request = _Connection.request(
        host, path, {"inputs": "def ", "options": {"length": length, "temperature": 0.8}}
    )
    first: list[float] = []
    totals: list[float] = []
    errors = 0

    async def exchange(connection: _Connection) -> None:
        nonlocal errors
        start = time.perf_counter()
        status, headers = await connection.head(request)
        if status != 200:
            await connection.body(headers)
            errors += 1
            return
        got = 0
        async for chunk in connection.chunks():
            for event in chunk.decode().split("\n\n"):
                if event.startswith("data: ") and event != "data: {}":
                    if not got:
                        first.append(time.perf_counter() - start)
                    got += len(json.loads(event[6:])["text"])
        if got != length:
            errors += 1
        totals.append(time.perf_counter() - start)

    await _drive(host, port, clients, seconds, exchange)
    chars = length * len(totals)
    return {
        "clients": clients,
        "streams": len(totals),
        "first_char_p50_ms": round(1000 * _percentile(first, 0.5), 2),
        "first_char_p99_ms": round(1000 * _percentile(first, 0.99), 2),
        "chars_per_s_per_stream": round(chars / sum(totals), 1) if totals else None,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--stream-clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--length", type=int, default=200, help="characters per stream")
    parser.add_argument("--image-run", help="a LeNet-5 run (default: train a tiny one)")
    parser.add_argument("--text-run", help="a char-LSTM run (default: train a tiny one)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument(
        "--httpx-too", action="store_true", help="also classify from httpx clients in one process"
    )
    args = parser.parse_args()
    if args.quick:
        args.clients, args.stream_clients, args.seconds, args.length = 4, 2, 2.0, 50
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if args.image_run and args.text_run:
            image_run, text_run = Path(args.image_run), Path(args.text_run)
        else:
            image_run, text_run = _train_runs(Path(tmp), 64 if args.quick else 512)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "striate",
                "serve",
                str(image_run),
                str(text_run),
                "--port",
                str(port),
                "--device",
                "cpu",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/api/runs", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: {server.stdout.read()}")
                time.sleep(0.2)
            names = [r["name"] for r in httpx.get(f"{base}/api/runs").json()]
            host = "127.0.0.1"
            classify = asyncio.run(
                _classify_load(host, port, f"/api/{names[0]}/predict", args.clients, args.seconds)
            )
            through_httpx = (
                asyncio.run(
                    _classify_load_httpx(
                        f"{base}/api/{names[0]}/predict", args.clients, args.seconds
                    )
                )
                if args.httpx_too
                else None
            )
            stream = asyncio.run(
                _stream_load(
                    host,
                    port,
                    f"/api/{names[1]}/stream",
                    args.stream_clients,
                    args.seconds,
                    args.length,
                )
            )
            peak = _peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    clients, streams = classify["clients"], stream["clients"]
    httpx_rows = (
        [
            row(f"serve: classify LeNet-5, {label}, {clients} httpx clients in one process "
                "(client-bound: compare with the rows above)", through_httpx[key], unit=unit)
            for label, key, unit in (("p50 latency", "p50_ms", "ms"),
                                     ("p99 latency", "p99_ms", "ms"),
                                     ("throughput", "requests_per_s", "req/s"))
        ]
        if through_httpx
        else []
    )  # fmt: skip
    emit(
        {
            "bench": "serve",
            "quick": args.quick,
            "classify_lenet5": classify,
            "classify_lenet5_httpx_clients": through_httpx,
            "stream_char_lstm": stream,
            "server_peak_rss_mb": round(peak, 1),
            "cpu_cores": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            # the classifier's requests are batched on one thread of this many intra-op
            # threads (striate.serve.batching); streams run with torch's default
            "torch_threads_server": {"batching": inference_threads(), "streams": "default"},
            "server_stack": _server_stack(),
            "client": "one process, one keep-alive HTTP/1.1 connection per client (_Connection)",
            "python": ".".join(map(str, sys.version_info[:3])),
            "rows": [
                row(f"serve: classify LeNet-5, p50 latency, {clients} clients",
                    classify["p50_ms"], unit="ms"),
                row(f"serve: classify LeNet-5, p99 latency, {clients} clients (target < 50)",
                    classify["p99_ms"], unit="ms"),
                row(f"serve: classify LeNet-5, p99.9 latency, {clients} clients",
                    classify["p999_ms"], unit="ms"),
                row(f"serve: classify LeNet-5, throughput, {clients} clients",
                    classify["requests_per_s"], unit="req/s"),
                row(f"serve: char-LSTM stream, first character p50, {streams} clients",
                    stream["first_char_p50_ms"], unit="ms"),
                row(f"serve: char-LSTM stream, first character p99, {streams} clients "
                    "(target < 100)", stream["first_char_p99_ms"], unit="ms"),
                row("serve: errors, both phases", classify["errors"] + stream["errors"]),
                row("serve: server peak memory (VmHWM)", round(peak, 1), unit="MiB"),
                *httpx_rows,
            ],
        }
    )  # fmt: skip


if __name__ == "__main__":
    main()
