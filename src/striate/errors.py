"""The one error type a user sees.

Anything a person can get wrong (a missing file, an unknown model, a negative learning rate,
a corrupt archive) raises :class:`StriateError` with a message that fits on one line. The
command line prints that line to stderr and exits with code 2, without a traceback; the
Python API lets it propagate like any other exception.
"""

from __future__ import annotations


class StriateError(Exception):
    """A user-facing error: one clear line, exit code 2 on the command line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class Interrupted(StriateError):
    """Training was stopped by the user (Ctrl-C); the last state was saved."""

    exit_code = 130
