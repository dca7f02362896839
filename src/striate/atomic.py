"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file striate writes (JSON, pictures, HTML, videos, checkpoints, ``--out`` targets)
goes through here. Each write goes to a temporary file in the same directory, is flushed
and fsynced, replaces the target with ``os.replace`` (atomic on POSIX and Windows), and the
directory is fsynced after the rename, so after a crash or a power cut the target is the
old file or the new one, complete.

A target is only ever a regular file: an existing device, FIFO, socket or directory under
the target's name is refused (replacing ``/dev/null`` with a file, or a pipe a reader waits
on, is never what ``--out`` meant), and a symlink is followed, so ``--out link`` updates the
file the link points at as a shell's ``>`` would, and the link stays a link.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from striate.errors import StriateError


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk (the rename that publishes it comes after)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symlink that leads nowhere it can be followed"
    return "not a regular file"


def resolve_target(target: str | Path) -> Path:
    """The file a write to ``target`` should replace: symlinks followed, and refused with
    one line when what is there is not a regular file.

    The rename that publishes a file replaces the directory entry it lands on; landing on a
    symlink would turn the link into a plain file (leaving what it pointed at unchanged),
    and landing on a device or FIFO would swap a system object for a file. So a link is
    resolved to its final target, and anything but a regular file (or nothing) is refused.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    except NotADirectoryError:
        return target  # a parent is a file: ensure_parent says so
    if not stat.S_ISREG(mode):
        raise StriateError(f"will not replace {target}: it is {_kind(mode)}, not a regular file")
    return target


def ensure_parent(target: str | Path) -> Path:
    """Create the folder ``target`` goes in; a file in the way is "Not a directory".

    ``mkdir(exist_ok=True)`` reports a file where a folder should be as "File exists",
    which reads as if the output itself were in the way; the error names the file instead.
    """
    parent = Path(target).parent
    for folder in (parent, *parent.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, f"Not a directory: {folder} is a file", str(target)
                )
            break
    parent.mkdir(parents=True, exist_ok=True)
    return parent


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    The temporary name keeps the target's extension (``.clip.x1y2.mp4``), so a writer that
    picks its format from the extension (PIL, matplotlib, PyAV) writes the right one. On an
    exception the temporary file is removed and ``target`` is left as it was. ``target``
    goes through :func:`resolve_target` first (symlinks followed, special files refused).
    """
    ensure_parent(target)
    target = resolve_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)  # a dangling link's own folder
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _published_mode(target))  # mkstemp's 0600 is for the temporary only
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _published_mode(target: Path) -> int:
    """The permissions the written file gets: those of the file it replaces, else what any
    new file gets here (0666 less the umask), as ``open(target, "w")`` would give."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask (read by setting it, then put back at once)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (the one place raw bytes reach the disk; a full disk's
    OSError propagates and :func:`atomic_path` removes the temporary file)."""
    with open(path, "wb") as fh:
        fh.write(data)


def write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        _write_file(tmp, data)


def write_text(target: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))


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
