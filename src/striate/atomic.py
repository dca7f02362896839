"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file striate writes (JSON, pictures, HTML, videos, checkpoints, ``--out`` targets)
goes through here. Each write goes to a temporary file in the same directory, is flushed
and fsynced, replaces the target with ``os.replace`` (atomic on POSIX and Windows), and the
directory is fsynced after the rename, so after a crash or a power cut the target is the
old file or the new one, complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk (the rename that publishes it comes after)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    The temporary name keeps the target's extension (``.clip.x1y2.mp4``), so a writer that
    picks its format from the extension (PIL, matplotlib, PyAV) writes the right one. On an
    exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
