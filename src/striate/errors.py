"""The one error type a user sees.

Anything a person can get wrong (a missing file, an unknown model, a negative learning rate,
a corrupt archive) raises :class:`StriateError` with a message that fits on one line. The
command line prints that line to stderr and exits with code 2, without a traceback; the
Python API lets it propagate like any other exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


class StriateError(Exception):
    """A user-facing error: one clear line, exit code 2 on the command line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class Interrupted(StriateError):
    """Training was stopped by the user (Ctrl-C); the last state was saved."""

    exit_code = 130


def not_finite_error(what: str = "NaN") -> StriateError:
    """The one line for a model whose outputs hold NaN or infinity: its probabilities and
    labels would be meaningless (and NaN is not JSON), so no command reports them."""
    return StriateError(
        f"the model's outputs are not finite ({what}): its weights are corrupt or training diverged"
    )


def check_finite(values: Tensor) -> Tensor:
    """``values`` (a model's outputs), refused with :func:`not_finite_error` if any of them
    is NaN or infinite; every predictor passes its outputs through this."""
    if not bool(values.isfinite().all()):
        raise not_finite_error("NaN" if bool(values.isnan().any()) else "infinite")
    return values
