"""Ctrl-C at a step boundary: the first one asks the training loop to stop after the update in
flight (which then validates and saves a checkpoint); a second one interrupts at once."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequest:
    """While active, the first Ctrl-C only asks the loop to stop at the next step boundary
    (so the update in flight completes with its step counter); a second one interrupts at
    once. Only the main thread can take signals; elsewhere Ctrl-C behaves as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
