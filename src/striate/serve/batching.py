"""Dynamic batching: concurrent predict requests for one run answered by shared forward passes.

Under load, requests for one run arrive faster than forward passes of one request each can
answer them. Run one per worker thread, they fight over the cores (every concurrent forward
starts torch's intra-op threads: 16 requests on 2 cores is 32 busy threads) and over the
GIL, and the unluckiest wait behind all the others: the served LeNet-5's p99 was twelve
times its p50 at 16 clients. A :class:`Batcher` gives each batchable run one inference
thread instead. The thread takes every request that is waiting (up to ``max_items`` inputs),
merges those with the same options into one ``predict`` call (one forward pass over the
stacked inputs) and hands each request its own slice of the results, in order.

It never waits for a batch to fill: a lone request runs at once, and under load the next
batch gathers while the current one runs, so the batch size follows the load by itself.
Results equal one-at-a-time prediction (to float32 rounding: the CPU's kernels may round a
batch's last bit differently from one input's): only requests with equal options share a
call, and a predictor is batchable (``Predictor.batchable``) only when each result depends
on its own input and the options alone. When a shared call fails (one request's image does
not decode), each of its requests is run alone, so only the bad one gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from striate.predict import Predictor

MAX_BATCH_ITEMS = 32  # inputs in one forward pass (a request larger than this runs alone)

# a request's (inputs, options) -> the list of inputs its predict call takes (decoded, checked)
Prepare = Callable[[Any, dict[str, Any]], list[Any]]


@dataclass
class _Request:
    inputs: Any
    options: dict[str, Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    size: int  # inputs it holds, before decoding
    key: str | None = field(init=False)  # requests with the same key may share a call

    def __post_init__(self) -> None:
        try:
            self.key = json.dumps(self.options, sort_keys=True)
        except (TypeError, ValueError):  # not JSON data (a Python caller): never merged
            self.key = None

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the answer to the request's event loop (thread-safe; a request whose client
        left is skipped)."""

        def done() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(done)


def inference_threads() -> int:
    """Intra-op threads for an inference thread: the cores this process may use, less one
    for the event loop, which is busy whenever requests are. On 2 cores that is 1: two
    intra-op threads there stall whenever the event loop (or anything else) holds a core,
    since each parallel region waits for its slowest thread (on this project's 2-core machine,
    under load from other processes, a LeNet-5 forward of one image took 53 ms on two threads
    and 1.2 ms on one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def own_threads(count: int) -> None:
    """Run the calling thread's torch operations on ``count`` intra-op threads, leaving the
    default of other threads as it was. (``torch.set_num_threads`` also sets the count that
    threads started later begin with; that is put back from a short-lived thread, since
    setting it from any thread sets that thread's own count too.)"""
    default = torch.get_num_threads()
    torch.set_num_threads(count)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))
    restore.start()
    restore.join()


class Batcher:
    """One inference thread for one predictor, answering requests in batches.

    ``prepare(inputs, options)`` turns one request into the list of inputs its ``predict``
    takes (decoding, and the checks that belong to the request alone); it runs on the
    inference thread, so a large upload does not stall the event loop. The thread starts on
    the first request and stops at :meth:`close` (a later request starts it again: an
    application can be started and stopped more than once).
    """

    def __init__(
        self,
        predictor: Predictor,
        prepare: Prepare,
        max_items: int = MAX_BATCH_ITEMS,
        threads: int | None = None,
    ) -> None:
        if not predictor.batchable:
            raise ValueError(f"{type(predictor).__name__} does not predict in batches")
        self.predictor = predictor
        self.prepare = prepare
        self.max_items = max(1, min(max_items, predictor.limits.max_items))
        self.threads = threads or inference_threads()
        self._waiting: deque[_Request] = deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # predict calls made (for tests and curiosity)
        self.items = 0  # inputs they took
        self.largest = 0  # the most inputs one of them took

    async def predict(self, inputs: Any, options: dict[str, Any]) -> list[Any]:
        """The results of one request, as ``predictor.predict(prepare(inputs, options),
        **options)`` would give them, computed together with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        size = len(inputs) if isinstance(inputs, list) else 1
        request = _Request(inputs, options, loop.create_future(), loop, size)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"striate-batcher-{self.predictor.kind}", daemon=True
                )
                self._thread.start()
            self._waiting.append(request)
            self._lock.notify()
        return await request.future

    def close(self, timeout: float = 30.0) -> None:
        """Answer what is waiting, then stop the thread (and wait for it, up to ``timeout``)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._closed = False

    @property
    def thread(self) -> threading.Thread | None:
        """The inference thread while it runs, else None."""
        return self._thread

    # -- the inference thread -------------------------------------------------------------

    def _serve(self) -> None:
        own_threads(self.threads)
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:  # closed, and nothing left to answer
                    self._thread = None  # (under the lock: a new request starts a new one)
                    return
                taken = [self._waiting.popleft()]
                items = taken[0].size
                while self._waiting and items + self._waiting[0].size <= self.max_items:
                    items += self._waiting[0].size
                    taken.append(self._waiting.popleft())
            self._answer(taken)

    def _answer(self, requests: list[_Request]) -> None:
        """Prepare each request alone, then predict once per group of equal options."""
        groups: dict[Any, list[tuple[_Request, list[Any]]]] = {}
        for n, request in enumerate(requests):
            try:
                prepared = self.prepare(request.inputs, request.options)
            except Exception as exc:  # this request's own fault: the others go on
                request.settle(error=exc)
                continue
            key = request.key if request.key is not None else ("alone", n)
            groups.setdefault(key, []).append((request, prepared))
        for group in groups.values():
            self._predict_group(group)

    def _predict_group(self, group: list[tuple[_Request, list[Any]]]) -> None:
        options = group[0][0].options
        items = [item for _, prepared in group for item in prepared]
        try:
            results = self.predictor.predict(items, **options)
            if len(results) != len(items):
                raise RuntimeError(f"predict gave {len(results)} results for {len(items)} inputs")
        except Exception as exc:
            if len(group) == 1:
                group[0][0].settle(error=exc)
                return
            for request, prepared in group:  # find whose input failed: each one alone
                self._predict_group([(request, prepared)])
            return
        self.batches += 1
        self.items += len(items)
        self.largest = max(self.largest, len(items))
        start = 0
        for request, prepared in group:
            request.settle(results[start : start + len(prepared)])
            start += len(prepared)
