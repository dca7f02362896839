"""Dynamic batching in ``striate serve``: concurrent requests share forward passes, and every
request gets exactly what it would have got alone (values, order, its own options, its own
errors); closing stops the inference thread."""

from __future__ import annotations

import asyncio
import io
import json
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
import httpx
from fastapi.testclient import TestClient
from PIL import Image
from serve_inputs import b64, png_bytes, same_results

from striate.errors import StriateError
from striate.predict import Limits, load
from striate.serve.app import create_app
from striate.serve.batching import Batcher, own_threads
from striate.serve.inputs import request_items


def _noise_png(seed: int) -> bytes:
    """A distinct 28 x 28 grey image per seed (so every request has its own answer)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


class _Gate:
    """A ``prepare`` that holds the inference thread on the first request until opened, so
    that every request sent meanwhile is waiting when it looks again (a batch, for sure)."""

    def __init__(self, prepare):
        self.prepare, self.first = prepare, True
        self.reached, self.opened = threading.Event(), threading.Event()

    def __call__(self, inputs, options):
        if self.first:
            self.first = False
            self.reached.set()
            assert self.opened.wait(30)
        return self.prepare(inputs, options)


async def _gated(batcher: Batcher, gate: _Gate, requests: list[tuple]) -> list:
    """Send ``requests`` (inputs, options) at once, the first alone and the rest while it is
    held; each answer is its results or the exception it raised."""
    first = asyncio.ensure_future(batcher.predict(*requests[0]))
    await asyncio.sleep(0)  # the first request is queued
    assert await asyncio.to_thread(gate.reached.wait, 30)  # taken alone, held at the gate
    rest = [asyncio.ensure_future(batcher.predict(*r)) for r in requests[1:]]
    await asyncio.sleep(0)  # every request is queued
    gate.opened.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


class _Doubler:
    """The smallest batchable predictor: each number times ``factor``; it counts its calls
    and refuses negative numbers (a bad input) with a StriateError."""

    kind, batchable, limits, options = "double", True, Limits(max_items=64), ("factor",)

    def __init__(self):
        self.calls: list[list] = []
        self.torch_threads: set[int] = set()

    def predict(self, inputs, factor=2):
        self.calls.append(list(inputs))
        self.torch_threads.add(torch.get_num_threads())
        if any(x < 0 for x in inputs):
            raise StriateError(f"negative input {min(inputs)}")
        return [x * factor for x in inputs]


def test_merged_requests_get_their_own_slices_and_options():
    doubler = _Doubler()
    gate = _Gate(lambda inputs, options: inputs if isinstance(inputs, list) else [inputs])
    batcher = Batcher(doubler, gate, max_items=8)
    requests = [
        (1, {}),
        ([2, 3], {}),
        (4, {"factor": 10}),
        ([5, 6, 7], {}),
        (8, {"factor": 10}),
        ([9, 10, 11, 12], {}),  # over the 8-input bound with the others: the next batch
    ]
    answers = asyncio.run(_gated(batcher, gate, requests))
    batcher.close()
    assert answers == [[2], [4, 6], [40], [10, 12, 14], [80], [18, 20, 22, 24]]
    # the first alone; then one call per option set, in arrival order, within 8 inputs
    assert doubler.calls == [[1], [2, 3, 5, 6, 7], [4, 8], [9, 10, 11, 12]]
    assert batcher.batches == 4 and batcher.largest == 5


def test_a_bad_input_fails_only_its_own_request():
    doubler = _Doubler()

    def prepare(inputs, options):
        if inputs == "junk":
            raise StriateError("not a number")
        return [inputs]

    gate = _Gate(prepare)
    batcher = Batcher(doubler, gate)
    requests = [(0, {}), (1, {}), (-1, {}), ("junk", {}), (3, {})]
    answers = asyncio.run(_gated(batcher, gate, requests))
    batcher.close()
    assert doubler.torch_threads == {batcher.threads}
    assert answers[0] == [0] and answers[1] == [2] and answers[4] == [6]
    assert isinstance(answers[2], StriateError) and "negative input -1" in str(answers[2])
    assert isinstance(answers[3], StriateError) and "not a number" in str(answers[3])
    # the shared call failed, then each request ran alone
    assert doubler.calls == [[0], [1, -1, 3], [1], [-1], [3]]


@pytest.fixture(scope="module")
def classifier(tiny_runs):
    return load(tiny_runs["image-classification"], "cpu")


def test_batched_images_equal_one_at_a_time(classifier):
    prepare = _Gate(lambda inputs, options: request_items(classifier, inputs, options))
    batcher = Batcher(classifier, prepare)
    images = [b64(_noise_png(seed)) for seed in range(12)]
    requests = [(images[0], {"top_k": 3})]
    requests += [(images[n], {"top_k": 1 + n % 3}) for n in range(1, 9)]
    requests += [(images[9:12], {"top_k": 3})]  # three images in one request
    requests += [(images[4], {"top_k": 2, "explain": True, "target": "3"})]
    answers = asyncio.run(_gated(batcher, gate=prepare, requests=requests))
    batcher.close()
    assert batcher.batches == 5 and batcher.largest == 6  # the first; top_k 1, 2, 3; explain
    for (inputs, options), answer in zip(requests, answers, strict=True):
        alone = classifier.predict(request_items(classifier, inputs, options), **options)
        assert same_results(answer, alone)  # the same classes, order and values
    assert [len(a) for a in answers] == [1] * 9 + [3, 1]
    assert [len(a[0]["top"]) for a in answers[1:9]] == [2, 3, 1, 2, 3, 1, 2, 3]
    assert answers[-1][0]["explain"]["class"] == "3"


def test_concurrent_api_requests_all_get_their_own_answer(tiny_runs, classifier):
    app = create_app([tiny_runs["image-classification"]], device="cpu")
    images = [b64(_noise_png(100 + n)) for n in range(32)]
    bodies = [{"inputs": image, "options": {"top_k": 1 + n % 4}} for n, image in enumerate(images)]
    bodies[5]["inputs"] = b64(b"not an image")
    bodies[6]["options"] = {"top_k": 0}

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *[client.post("/api/digits/predict", json=body) for body in bodies]
            )

    answers = asyncio.run(burst())
    app.state.batchers["digits"].close()
    assert [a.status_code for a in answers] == [200] * 5 + [400, 400] + [200] * 25
    assert "not a readable image" in answers[5].json()["error"]
    assert "top-k must be between" in answers[6].json()["error"]
    for n, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
        if n not in (5, 6):
            alone = classifier.predict(
                request_items(classifier, body["inputs"], body["options"]), **body["options"]
            )
            assert same_results(answer.json(), json.loads(json.dumps({"results": alone})))


def test_stopping_the_server_stops_the_inference_thread(tiny_runs):
    app = create_app([tiny_runs["image-classification"]], device="cpu")
    batcher = app.state.batchers["digits"]
    body = {"inputs": b64(png_bytes()), "options": {}}
    for _ in range(2):  # the application can be started again after it stopped
        with TestClient(app) as client:
            assert client.post("/api/digits/predict", json=body).status_code == 200
            thread = batcher.thread
            assert thread is not None and thread.is_alive()
        assert not thread.is_alive() and batcher.thread is None
    assert not [t for t in threading.enumerate() if t.name.startswith("striate-batcher")]


def test_closing_answers_what_is_waiting_first():
    doubler = _Doubler()
    gate = _Gate(lambda inputs, options: [inputs])
    batcher = Batcher(doubler, gate)

    async def main():
        waiting = [asyncio.ensure_future(batcher.predict(n, {})) for n in range(4)]
        await asyncio.sleep(0)  # all queued
        assert await asyncio.to_thread(gate.reached.wait, 30)
        closing = asyncio.ensure_future(asyncio.to_thread(batcher.close))
        gate.opened.set()
        await closing
        return await asyncio.gather(*waiting)

    thread_answers = asyncio.run(main())
    assert thread_answers == [[0], [2], [4], [6]] and batcher.thread is None


def test_an_inference_thread_sets_only_its_own_torch_threads():
    default, seen = torch.get_num_threads(), {}

    def inference():
        own_threads(default + 1)
        seen["own"] = torch.get_num_threads()

    def later():
        seen["later"] = torch.get_num_threads()

    for target in (inference, later):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    assert seen == {"own": default + 1, "later": default} and torch.get_num_threads() == default
