"""Text sources by name, and the one function that loads any of them.

Sources:

* ``python-stdlib`` (the default, no download): the ``.py`` files of this Python's own
  standard library, concatenated in a fixed order and capped at :data:`STDLIB_MAX_CHARS`
  characters. Every machine with Python has it, and the same Python always gives the same
  text, so character models train offline with no arguments.
* ``shakespeare``: tiny-shakespeare, the 1.1 MB char-rnn corpus, found in or downloaded
  (checksum-verified) into ``<data_dir>/tinyshakespeare/input.txt``.
* ``file:PATH`` or simply ``PATH``: any UTF-8 text file.

Text is returned as a ``str`` with Windows line endings (``\\r\\n``) turned into ``\\n`` and
a UTF-8 byte-order mark dropped; empty, binary or non-UTF-8 input raises a one-line
:class:`StriateError`.

Example:
    >>> text = load_text("python-stdlib", max_chars=100_000)
    >>> train, val = split_text(text, 0.1)
    >>> len(text) <= 100_000 and train + val == text
    True
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from striate.data.download import RemoteFile, ensure_files
from striate.data.paths import resolve_data_dir
from striate.errors import StriateError
from striate.registry import Registry

__all__ = [
    "STDLIB_MAX_CHARS",
    "describe_text_sources",
    "load_text",
    "read_text_file",
    "split_text",
    "stdlib_text",
    "text_sources",
]

FILE_PREFIX = "file:"
STDLIB_MAX_CHARS = 3_000_000
STDLIB_SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)

SHAKESPEARE_FOLDER = "tinyshakespeare"
# sha256 as published in ../shared/data/tinyshakespeare/README.md (char-rnn commit
# 6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e); 1,115,394 bytes, 65 distinct characters.
SHAKESPEARE = RemoteFile(
    "input.txt",
    (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/"
        "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
    ),
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)


@dataclass(frozen=True)
class TextSource:
    """A named source: ``load(data_dir, download)`` gives its whole text; ``where`` and
    ``present`` describe where it looks and whether it is there."""

    name: str
    description: str
    load: Callable[[Path, bool], str]
    where: Callable[[Path], str]
    present: Callable[[Path], bool]

    def __call__(self, root: Path, download: bool) -> str:
        return self.load(root, download)


SOURCES: Registry[TextSource] = Registry("text source")


# -- reading ------------------------------------------------------------------------------


def read_text_file(path: str | Path) -> str:
    """The text of a UTF-8 file; a :class:`StriateError` if it is missing, unreadable,
    binary, not UTF-8 or empty (whitespace only counts as empty)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StriateError(f"text file {path} not found") from None
    except IsADirectoryError:
        raise StriateError(f"{path} is a directory, not a text file") from None
    except OSError as exc:
        raise StriateError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = decode_utf8_text(data, str(path))
    if not text.strip():
        raise StriateError(f"text file {path} is empty")
    return text


def decode_utf8_text(data: bytes, where: str) -> str:
    """``data`` as UTF-8 text (a byte-order mark dropped, CRLF made LF); a one-line
    :class:`StriateError` naming ``where`` if it is binary or not UTF-8. Shared by files and
    standard input, so that bytes piped in are refused exactly as the same bytes in a file."""
    if b"\x00" in data:
        raise StriateError(f"{where} looks like a binary file (it holds NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StriateError(
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8 first"
        ) from None
    return text.replace("\r\n", "\n")


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(folder: Path) -> Iterator[Path]:
    """The standard library's ``.py`` files, depth first, each folder's entries sorted by
    name; test folders, test_*.py files, site-packages and symlinked folders skipped."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in STDLIB_SKIP_DIRS and not entry.name.startswith("."):
                yield from _stdlib_files(Path(entry.path))
        elif entry.name.endswith(".py") and not entry.name.startswith("test_"):
            yield Path(entry.path)


def stdlib_text(max_chars: int = STDLIB_MAX_CHARS) -> str:
    """Python's own standard library source as one text, at most ``max_chars`` long.

    Files are taken in a fixed order (see :func:`_stdlib_files`), each after a
    ``# file: <relative path>`` line, until the cap is reached; the text is then cut at the
    last line end before the cap. The same Python installation always gives the same text.
    """
    if max_chars < 1:
        raise StriateError(f"max_chars must be positive, got {max_chars}")
    root = _stdlib_root()
    parts: list[str] = []
    total = 0
    for path in _stdlib_files(root):
        try:
            body = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
        except (OSError, UnicodeDecodeError):
            continue  # unreadable or a legacy encoding: skipped the same way every time
        part = f"# file: {path.relative_to(root).as_posix()}\n{body}\n"
        parts.append(part)
        total += len(part)
        if total >= max_chars:
            break
    if not parts:
        raise StriateError(
            f"no Python source files found in {root}; use the shakespeare source or file:PATH"
        )
    return _cap("".join(parts), max_chars)


def _cap(text: str, max_chars: int | None) -> str:
    """``text`` cut to at most ``max_chars``, at the last line end when there is one."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    return text[: cut + 1] if cut > 0 else text[:max_chars]


# -- sources ------------------------------------------------------------------------------


def _load_shakespeare(root: Path, download: bool) -> str:
    found = ensure_files(root / SHAKESPEARE_FOLDER, [SHAKESPEARE], download)
    return read_text_file(found[SHAKESPEARE.filename])


SOURCES.register("python-stdlib")(
    TextSource(
        "python-stdlib",
        "the source code of this Python's standard library, about 3 million characters "
        "(built in, no download)",
        lambda root, download: stdlib_text(),
        lambda root: str(_stdlib_root()),
        lambda root: True,
    )
)
SOURCES.register("shakespeare")(
    TextSource(
        "shakespeare",
        "tiny-shakespeare (char-rnn): 1,115,394 characters of Shakespeare plays, 65 symbols",
        lambda root, download: _load_shakespeare(root, download),
        lambda root: str(root / SHAKESPEARE_FOLDER / SHAKESPEARE.filename),
        lambda root: (root / SHAKESPEARE_FOLDER / SHAKESPEARE.filename).is_file(),
    )
)


def text_sources() -> list[str]:
    """Names of the built-in sources, plus the ``file:PATH`` pattern."""
    return [*SOURCES.names(), f"{FILE_PREFIX}PATH"]


def describe_text_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per source: name, description, where it looks, whether it is present."""
    root = resolve_data_dir(data_dir)
    rows = []
    for name in SOURCES.names():
        source = SOURCES.get(name)
        rows.append(
            {
                "name": name,
                "description": source.description,
                "where": source.where(root),
                "present": source.present(root),
            }
        )
    rows.append(
        {
            "name": f"{FILE_PREFIX}PATH",
            "description": "any UTF-8 text file (a plain path works too)",
            "where": "PATH",
            "present": None,
        }
    )
    return rows


def load_text(
    source: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    max_chars: int | None = None,
) -> str:
    """The whole text of a source.

    Args:
        source: a name from :func:`text_sources`, ``"file:PATH"`` or a path to a text file.
        data_dir: root holding one folder per source (see ``striate.data.paths``).
        download: fetch a missing shakespeare file; when false, a missing file is an error.
        max_chars: keep at most this many characters (cut at a line end); for
            ``python-stdlib`` it also bounds how much is read (default
            :data:`STDLIB_MAX_CHARS`).
    """
    if max_chars is not None and max_chars < 1:
        raise StriateError(f"max_chars must be positive, got {max_chars}")
    if source == "python-stdlib":
        return stdlib_text(max_chars or STDLIB_MAX_CHARS)
    if source in SOURCES:
        return _cap(SOURCES.get(source)(resolve_data_dir(data_dir), download), max_chars)
    if source.startswith(FILE_PREFIX):
        path = source[len(FILE_PREFIX) :]
        if not path:
            raise StriateError(f"{FILE_PREFIX} needs a path, as in {FILE_PREFIX}notes.txt")
    elif source and Path(source).expanduser().exists():
        path = source
    else:
        known = ", ".join(SOURCES.names())
        raise StriateError(
            f"unknown text source {source!r} (and no such file); known: {known}, or "
            f"{FILE_PREFIX}PATH for a UTF-8 text file"
        )
    return _cap(read_text_file(path), max_chars)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Contiguous train/validation split: the last ``val_fraction`` of the text is
    validation (at least one character when the fraction is positive), the rest train."""
    if not 0.0 <= val_fraction < 1.0:
        raise StriateError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return text, ""
    n_val = max(1, round(len(text) * val_fraction))
    if n_val >= len(text):
        raise StriateError(
            f"text of {len(text)} characters is too short to hold out {val_fraction:g} "
            "of it for validation"
        )
    return text[:-n_val], text[-n_val:]
