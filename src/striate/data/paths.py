"""Where data sets live and where decoded copies are cached.

* Data directory (downloaded archives, one sub-folder per source; may be read-only):
  explicit argument > environment variable ``STRIATE_DATA`` > ``$XDG_CACHE_HOME/striate/data``
  (``~/.cache/striate/data`` when ``XDG_CACHE_HOME`` is unset).
* Cache directory (decoded tensors, checksum stamps; must be writable): ``STRIATE_CACHE`` >
  ``$XDG_CACHE_HOME/striate`` > ``~/.cache/striate``; created on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

from striate.errors import StriateError


def _user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser()
    return Path.home() / ".cache"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The root folder that holds one sub-folder per data source (``mnist/``, ``cifar10/``...).

    Not created here: the folder may be read-only (a shared copy), and a source only needs to
    write into it when it downloads.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("STRIATE_DATA")
    if env:
        return Path(env).expanduser()
    return _user_cache_root() / "striate" / "data"


def cache_dir(sub: str | None = None) -> Path:
    """The writable cache folder (optionally a sub-folder of it), created if missing."""
    env = os.environ.get("STRIATE_CACHE")
    root = Path(env).expanduser() if env else _user_cache_root() / "striate"
    path = root / sub if sub else root
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StriateError(
            f"cannot create the cache folder {path}: {exc.strerror or exc}; "
            "set STRIATE_CACHE to a writable folder"
        ) from None
    return path
