"""Read weight files without running anyone's code, and turn a pickle into safetensors once.

A ``.safetensors`` file is a JSON header and raw tensor bytes: reading it cannot execute
anything. A PyTorch ``.pth`` (what torchvision publishes) is a zip of a *pickle*, a program
for Python's unpickler; ``torch.load(weights_only=True)`` restricts that program to
rebuilding tensors and plain containers. That restriction had bypasses before PyTorch 2.6
(CVE-2025-32434: code execution through ``weights_only=True``), so older versions are
refused. ``convert_weights`` reads a ``.pth`` once and writes a safetensors file, after
which only safetensors is ever read.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from striate.atomic import write_bytes
from striate.errors import StriateError

__all__ = ["SAFE_TORCH", "convert_weights", "read_state_dict", "save_state_dict"]

SAFE_TORCH = (2, 6)  # the first release whose weights_only unpickler has no known bypass


def _torch_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def check_torch_for_pickles(version: str | None = None) -> None:
    """Refuse to read a pickle under a PyTorch whose ``weights_only`` loader can be bypassed."""
    version = version or torch.__version__
    if _torch_version(version) < SAFE_TORCH:
        raise StriateError(
            f"PyTorch {version} cannot read .pth files safely (torch.load(weights_only=True) "
            "has known bypasses before 2.6, CVE-2025-32434); upgrade PyTorch or use a "
            ".safetensors file"
        )


def _plain_tensors(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not obj:
        raise StriateError(f"{path} holds no state dict (a mapping of names to tensors)")
    bad = next(
        (k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)), None
    )
    if bad is not None:
        raise StriateError(f"{path} is not a plain state dict: entry {bad!r} is not a tensor")
    return dict(obj)


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    check_torch_for_pickles()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StriateError(f"weights file {path} not found") from None
    except Exception as exc:  # UnpicklingError for forbidden globals, RuntimeError for bad zips
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StriateError(f"cannot read {path} as plain tensors: {first}") from None
    return _plain_tensors(state, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise StriateError(f"weights file {path} not found") from None
    except OSError as exc:
        raise StriateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(b"PK") or head[:1] == b"\x80":
        raise StriateError(
            f"{path} is a pickle (a PyTorch .pth), not safetensors; it is not opened: "
            "convert a trusted file with `striate convert-weights FILE.pth OUT.safetensors`"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StriateError(f"{path} is not a valid safetensors file: {exc}") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` zip read with
    ``torch.load(weights_only=True)`` (plain state dicts only; PyTorch >= 2.6)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix in (".pth", ".pt", ".bin"):
        if path.is_file() and not zipfile.is_zipfile(path):
            raise StriateError(
                f"{path} is not a PyTorch zip archive (legacy or truncated files are refused)"
            )
        return _read_pth(path)
    raise StriateError(f"unknown weights file type {path.name!r}; use .safetensors or .pth")


def _dense(state: dict[str, torch.Tensor]) -> None:
    """Refuse tensors safetensors cannot hold (sparse, quantized, nested), naming the key:
    they have no single strided block of memory, and ``.contiguous()`` fails on them with
    a message that names neither the tensor nor the reason."""
    for key, value in state.items():
        if value.layout != torch.strided or value.is_quantized or value.is_nested:
            kind = "quantized" if value.is_quantized else str(value.layout).removeprefix("torch.")
            kind = "nested" if value.is_nested else kind
            raise StriateError(
                f"tensor {key!r} is {kind}, not dense: safetensors holds dense tensors only "
                "(convert it with .to_dense() or .dequantize() first)"
            )


def save_state_dict(state: dict[str, torch.Tensor], out: str | Path) -> Path:
    """Write tensors to a safetensors file atomically (no half-written file on failure).

    The file is serialised in memory and written by :func:`striate.atomic.write_bytes`:
    safetensors' own file writer reports a full disk as a ``SafetensorError`` and leaves
    its partial file, where Python's write raises an ``OSError`` and the temporary file goes.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise StriateError(f"output {out} must end in .safetensors")
    _dense(state)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    data = save(tensors)
    try:
        write_bytes(out, data)
    except OSError as exc:
        raise StriateError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def convert_weights(source: str | Path, out: str | Path) -> tuple[Path, int]:
    """Read a ``.pth`` state dict once (safely) and write it as safetensors: (path, tensors)."""
    state = read_state_dict(source)
    return save_state_dict(state, out), len(state)
