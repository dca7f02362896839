"""Helpers shared by the benchmark scripts: timing, matmul peaks, FLOP counts, MNIST, JSON.

Output: every script prints one JSON line through :func:`emit`, which adds ``machine`` and
``date``. Its ``rows`` (made by :func:`row`) are the figures that go into
``benchmarks/RESULTS.md`` (see ``results_table.py``): each says what was measured, against
which contender, the ratio, and at which precision, so that no ratio mixes precisions or
data paths without saying so.

Timing discipline (the machine may be shared): every contender is warmed up first, then the
contenders run in alternating rounds (A B C, B C A, C A B, ...) so that a burst of outside
load hits all of them alike, and the median over rounds is reported.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# timing


def time_call(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def quiet_engine(defaults: Any, **changes: Any) -> Any:
    """A task's engine defaults with ``changes``, on the CPU, without a progress bar and
    logging only at the end (a benchmark measures, it does not watch)."""
    return dataclasses.replace(
        defaults, **{"device": "cpu", "progress": False, "log_every": 10**9, **changes}
    )


def alternating_rounds(
    contenders: dict[str, Callable[[], float]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Call every contender ``warmup`` times, then ``rounds`` times in a rotating order.

    Each contender returns its own measurement (seconds, or seconds per step); the lists of
    measurements of the timed rounds are returned by name.
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class StepClock:
    """Timestamps of the starts of successive training steps.

    The steady-state time per step is the span from the first stamped step to the last,
    divided by the steps in between; it leaves out one-time setup (building an optimizer,
    a Trainer, a data iterator) and includes everything a step really costs (data, forward,
    backward, update, bookkeeping), since the interval between two step starts covers it all.
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def stamp(self) -> None:
        self.stamps.append(time.perf_counter())

    def reset(self) -> None:
        self.stamps = []

    def per_step(self, skip: int = 2) -> float:
        """Mean seconds per step after the first ``skip`` steps of the call."""
        stamps = self.stamps[skip:]
        if len(stamps) < 2:
            raise ValueError("need at least two stamped steps after the skipped ones")
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


# ---------------------------------------------------------------------------------------------
# hardware peak and model cost


def matmul_gflops(dtype: torch.dtype, size: int = 4096, reps: int = 3) -> float:
    """Best GFLOP/s of ``torch.mm`` of two ``size`` x ``size`` matrices of ``dtype``."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, oneDNN / MKL kernel selection
    best = min(time_call(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * size**3 / best / 1e9


def matmul_peaks(size: int = 4096) -> dict[str, float]:
    """The fp32 and bf16 matmul peaks of this machine, in GFLOP/s (in-process)."""
    return {
        "fp32": round(matmul_gflops(torch.float32, size), 1),
        "bf16": round(matmul_gflops(torch.bfloat16, size), 1),
    }


def train_flops_per_sample(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass (cross-entropy loss), per sample.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions only:
    the elementwise work is not counted, as in the usual "model FLOPs" convention).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(inputs)


def efficiency(images_per_s: float, flops_per_image: float, peaks: dict[str, float]) -> dict:
    """Achieved GFLOP/s and its fraction of each matmul peak."""
    achieved = images_per_s * flops_per_image / 1e9
    out: dict[str, float] = {"gflops": round(achieved, 2)}
    for name, peak in peaks.items():
        out[f"of_{name}_peak"] = round(achieved / peak, 4)
    return out


# ---------------------------------------------------------------------------------------------
# data


def data_dir() -> Path:
    """``$STRIATE_DATA``, else ``../shared/data`` next to the repository."""
    env = os.environ.get("STRIATE_DATA")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()


def load_mnist(split: str, val_fraction: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` as (uint8 images (N, 1, 28, 28), int64 labels) via striate's loader.

    ``val_fraction`` 0 keeps the whole official training set (60,000 images) for "train".
    """
    from striate.data.sources.images import load_image_data

    data = load_image_data(
        "mnist", split, data_dir=data_dir(), val_fraction=val_fraction, download=False
    )
    return data.images, data.labels


# ---------------------------------------------------------------------------------------------
# output


def machine() -> str:
    """What ran the benchmark, in a few words: CPU model, cores torch uses, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def row(
    figure: str,
    value: float | str | None,
    *,
    unit: str = "",
    contender: str | None = None,
    ratio: float | None = None,
    precision: str = "fp32",
    reference: str | None = None,
) -> dict[str, Any]:
    """One line of the results table.

    ``figure``: what was measured, with its configuration; ``value`` in ``unit``;
    ``contender``: what it is set against, saying its data path and precision when they
    differ; ``ratio``: value over the contender's (higher is better for striate);
    ``precision``: striate's side; ``reference``: a published figure beside the matching
    configuration, with its source.
    """
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "contender": contender,
        "ratio": ratio,
        "precision": precision,
        "reference": reference,
    }


def emit(record: dict[str, Any]) -> None:
    """Print ``record`` as one JSON line (floats rounded for reading), with the machine and
    the UTC date added."""
    record = {
        **record,
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

    def tidy(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 4) if abs(value) < 10 else round(value, 1)
        if isinstance(value, dict):
            return {k: tidy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tidy(v) for v in value]
        return value

    print(json.dumps(tidy(record)), flush=True)


def environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
