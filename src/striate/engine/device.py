"""Device choice and numeric precision: the same code on CPU, CUDA and MPS.

``precision`` is "fp32", "bf16" (autocast to bfloat16; CPU, CUDA) or "fp16" (autocast to
float16 with a gradient scaler; CUDA only). "auto" picks bf16 where it is the faster choice
(CUDA GPUs with bf16, CPUs with bf16 matrix units) and fp32 elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from striate.errors import StriateError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → cuda:<local_rank> if available, else mps, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StriateError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StriateError("device cuda asked for, but this PyTorch build sees no CUDA GPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise StriateError("device mps asked for, but MPS is not available here")
    return device


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is the faster choice: CUDA GPUs with bf16 support, and CPUs
    with bf16 matrix units (AVX-512 BF16 / AMX, which oneDNN uses for convolutions and
    matrix products; measured 1.2-1.3x over fp32 for LeNet-5 on such a CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


@dataclass
class Precision:
    """Autocast context plus, for fp16, a gradient scaler."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise StriateError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.name == "auto":
            self.name = "bf16" if fast_bf16(self.device) else "fp32"
        if self.name == "fp16" and self.device.type != "cuda":
            raise StriateError("fp16 needs a CUDA device; use bf16 on CPU")
        enabled = self.name == "fp16"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=enabled)

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                yield
