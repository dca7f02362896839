"""The web application: one page per served run, and a JSON API beside it.

Routes (``NAME`` is a run's directory name):

- ``GET /``: the served runs; ``GET /run/NAME``: the run's page (its task's own page, or
  for a task that has none, a generic one: JSON in, JSON out);
- ``GET /api/runs``, ``GET /api/NAME``: what each predictor is (``describe()``);
- ``POST /api/NAME/predict``: ``{"inputs": ..., "options": {...}}`` → ``{"results": ...}``;
- ``POST /api/NAME/stream`` (text generation): the same body, answered as server-sent
  events, one ``data: {"text": "..."}`` per piece, then ``event: done``;
- ``GET /docs``: this API, for people; ``GET /openapi.json``: for programs.

Images travel as base64 strings, clips as a video file, a zip of frames or a list of frames
(decoded by :mod:`striate.serve.inputs`).

Inference runs off the event loop. Concurrent predict requests to a batchable run (the image
classifier) wait for that run's inference thread, which answers all of them that wait with
one forward pass (:mod:`striate.serve.batching`); the other tasks predict in worker threads.

Every request is bounded: the body (bytes), images (pixels, checked from the header before
decoding: decompression bombs cost nothing), clips (frames, and a zip's entries and
unpacked bytes), texts (characters), beam size and sample length (:data:`SERVE_LIMITS`).
Bad input is a 4xx answer ``{"error": "one line"}``, an unknown run a 404; nothing a client
sends is written to disk, except a video file, which is decoded from a temporary folder that
is removed right after.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from striate.artifacts.run_dir import DEFAULT_ROOT
from striate.errors import StriateError
from striate.predict import SERVE_LIMITS, Limits, Predictor, load
from striate.predict.base import no_unknown
from striate.serve.batching import Batcher
from striate.serve.inputs import request_items, run_prediction

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 16 * 2**20  # one request's body
# each task's own page (static/PAGE.html and PAGE.js); any other kind gets the generic one
PAGES = {
    "image-classification": "image",
    "text-generation": "text",
    "sentiment": "sentiment",
    "translation": "translation",
    "image-captioning": "caption",
    "video-classification": "video",
}
log = logging.getLogger("striate.serve")


class HTTPProblem(Exception):
    """An answer other than 200: its status and the one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def run_names(refs: Sequence[str | Path]) -> list[str]:
    """A URL-safe name per run: its directory name (a checkpoint's run's), made unique."""
    names: list[str] = []
    for ref in refs:
        path = Path(ref)
        if path.parent.name == "checkpoints":
            path = path.parent.parent
        base = "".join(c if c.isalnum() or c in "-_." else "-" for c in path.name) or "run"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# request bodies


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of a request body of at most ``limit`` bytes (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPProblem(413, f"the request body is larger than {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPProblem(413, f"the request body is larger than {limit:,} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"the request body is not JSON ({exc})") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise HTTPProblem(400, 'the body must be a JSON object {"inputs": ..., "options": {...}}')
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise HTTPProblem(400, '"options" must be a JSON object')
    unknown = sorted(set(data) - {"inputs", "options"})
    if unknown:
        raise HTTPProblem(400, f"unknown field {unknown[0]!r}; the body holds inputs and options")
    return {"inputs": data["inputs"], "options": options}


# ---------------------------------------------------------------------------------------------
# streaming


def _produce(
    stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stop: threading.Event
) -> None:
    """Run a character stream in one thread (its inference mode is per thread), sending
    pieces to the event loop: the first character at once, then every 15 ms or 64
    characters; ``None`` ends it, an exception is passed on."""
    put = queue.put_nowait
    buffer: list[str] = []
    last = None
    try:
        for piece in stream:
            if stop.is_set():
                return
            buffer.append(piece)
            now = time.perf_counter()
            if last is None or len(buffer) >= 64 or now - last >= 0.015:
                loop.call_soon_threadsafe(put, "".join(buffer))
                buffer, last = [], now
        if buffer:
            loop.call_soon_threadsafe(put, "".join(buffer))
    except Exception as exc:  # passed to the client as an error event
        loop.call_soon_threadsafe(put, exc)
    finally:
        loop.call_soon_threadsafe(put, None)


async def sse_events(
    predictor: Predictor, prime: Any, options: dict[str, Any]
) -> AsyncIterator[str]:
    """Server-sent events of a text stream; leaving early (the client stopped) stops the
    sampling thread."""
    no_unknown(options, predictor.options)
    stream = predictor.stream(prime, **options)  # bad options raise here, before the 200
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    async def events() -> AsyncIterator[str]:
        worker = threading.Thread(target=_produce, args=(stream, loop, queue, stop), daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    message = str(item) if isinstance(item, StriateError) else "sampling failed"
                    yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
                    return
                yield f"data: {json.dumps({'text': item}, ensure_ascii=False)}\n\n"
            yield "event: done\ndata: {}\n\n"
        finally:
            stop.set()

    return events()


# ---------------------------------------------------------------------------------------------
# pages


def _template(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _frame(names: list[str], current: str | None, heading: str, task: str, body: str,
           script: str | None = None, config: dict[str, Any] | None = None) -> str:  # fmt: skip
    """The shared frame of every page (page.html) around ``body``; text is escaped here."""
    esc = html.escape
    links = [
        f'<a href="/run/{esc(n)}"{" class=current" if n == current else ""}>{esc(n)}</a>'
        for n in names
    ]
    frame = _template("page.html")
    if script is None:
        frame = frame.replace('<script src="{{script}}"></script>', "")
    return (
        frame.replace("{{title}}", esc(f"{heading} · striate serve"))
        .replace("{{nav}}", "".join(links))
        .replace("{{heading}}", esc(heading))
        .replace("{{task}}", esc(task))
        .replace("{{script}}", esc(script or ""))
        .replace("{{config}}", esc(json.dumps(config or {})))
        .replace("{{body}}", body)
    )


def page(name: str, predictor: Predictor, names: list[str]) -> str:
    """A run's page: the shared frame around the task's own part and script."""
    part = PAGES.get(predictor.kind, "generic")  # JSON in and out, for any other task
    config = {"name": name, "describe": predictor.describe()}
    task = f"{predictor.task} ({predictor.kind})"
    return _frame(names, name, name, task, _template(f"{part}.html"), f"/static/{part}.js", config)


def index(names: list[str], predictors: dict[str, Predictor]) -> str:
    """/: the served runs, each with its task."""
    esc = html.escape
    rows = "".join(
        f'<li><a href="/run/{esc(n)}">{esc(n)}</a>: {esc(predictors[n].task)} '
        f"<code>{esc(predictors[n].kind)}</code></li>"
        for n in names
    )
    body = (
        f'<section class="card"><h2>Served runs</h2><ul class="runs">{rows}</ul>'
        '<p>The JSON API is described at <a href="/docs">/docs</a>.</p></section>'
    )
    return _frame(names, None, "striate serve", f"{len(names)} run(s)", body)


def docs(names: list[str], predictors: dict[str, Predictor]) -> str:
    """/docs: the API for people (no external script: the JSON schema is /openapi.json)."""
    runs = "".join(
        f"<h3>{html.escape(n)}</h3>"
        f"<pre>{html.escape(json.dumps(predictors[n].describe(), indent=2))}</pre>"
        for n in names
    )
    body = _template("docs.html").replace("{{runs}}", runs)
    task = "for scripts; the machine-readable schema is /openapi.json"
    return _frame(names, None, "The JSON API", task, body)


# ---------------------------------------------------------------------------------------------
# the application


PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "inputs": {"description": "text(s), base64 image(s) or a clip object"},
                    "options": {"type": "object", "description": "the task's options"},
                },
            },
            "example": {"inputs": "ROMEO:", "options": {"temperature": 0.8, "length": 100}},
        }
    },
}


def create_app(
    runs: Sequence[str | Path],
    device: str = "auto",
    runs_dir: str | Path = DEFAULT_ROOT,
    limits: Limits = SERVE_LIMITS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The application serving ``runs``; each is loaded now, once (a bad run fails here
    with one line, before anything listens)."""
    if not runs:
        raise StriateError("give at least one run to serve")
    names = run_names(runs)
    predictors = {
        n: load(r, device, runs_dir=runs_dir, limits=limits)
        for n, r in zip(names, runs, strict=True)
    }
    for model in predictors.values():  # the first request must not pay for first calls
        model.warm_up()
    # concurrent requests to a batchable run share forward passes on its own thread
    batchers = {
        n: Batcher(p, partial(request_items, p)) for n, p in predictors.items() if p.batchable
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():  # answer what is waiting, then stop the threads
            await asyncio.to_thread(batcher.close)

    app = FastAPI(
        title="striate serve",
        description="Trained striate runs: describe them and predict with them.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.names, app.state.predictors, app.state.batchers = names, predictors, batchers
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def predictor(name: str) -> Predictor:
        if name not in predictors:
            raise HTTPProblem(404, f"no run named {name!r} is served (serving: {', '.join(names)})")
        return predictors[name]

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StriateError)
    async def _bad_input(request: Request, exc: StriateError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"no such page: {request.url.path}"}, status_code=404)

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": f"{request.method} is not allowed on {request.url.path}"}, status_code=405
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def _index() -> str:
        return index(names, predictors)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def _docs() -> str:
        return docs(names, predictors)

    @app.get("/run/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def _page(name: str) -> str:
        return page(name, predictor(name), names)

    @app.get("/api/runs", summary="The served runs and what each is")
    async def _runs() -> list[dict[str, Any]]:
        return [{"name": n, **predictors[n].describe()} for n in names]

    @app.get("/api/{name}", summary="What one run is: task, model, input, training, options")
    async def _describe(name: str) -> dict[str, Any]:
        return {"name": name, **predictor(name).describe()}

    @app.post(
        "/api/{name}/predict",
        summary="Predict with a run",
        openapi_extra={"requestBody": PREDICT_BODY},
    )
    async def _predict(name: str, request: Request) -> JSONResponse:
        model = predictor(name)
        body = await read_json(request, max_body_bytes)
        if name in batchers:
            results = await batchers[name].predict(body["inputs"], body["options"])
        else:
            results = await run_in_threadpool(
                run_prediction, model, body["inputs"], body["options"]
            )
        # predictors give plain JSON data: no jsonable_encoder walk over it on the event loop
        return JSONResponse({"results": results})

    @app.post(
        "/api/{name}/stream",
        summary="Generate text as server-sent events",
        openapi_extra={"requestBody": PREDICT_BODY},
        response_class=StreamingResponse,
    )
    async def _stream(name: str, request: Request) -> Response:
        model = predictor(name)
        if not hasattr(model, "stream"):
            raise HTTPProblem(400, f"run {name!r} ({model.kind}) does not generate text")
        body = await read_json(request, max_body_bytes)
        events = await sse_events(model, body["inputs"], body["options"])
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    return app
