"""Download files safely: mirrors, resume, checksums, atomic placement.

Only the standard library talks to the network (``urllib``). A download streams into
``<dest>.part`` (resumed with an HTTP ``Range`` request when a partial file is left over),
is checked against its published checksum, and only then renamed into place, so ``dest``
never holds a half-written or unverified file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from striate.data.paths import cache_dir
from striate.errors import StriateError

CHUNK = 1 << 20
TIMEOUT_S = 30.0
USER_AGENT = "striate-downloader/0.1 (+python urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """A file a data source needs: its name, the mirrors serving it, its checksum."""

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None

    @property
    def checksum(self) -> str:
        return f"sha256:{self.sha256}" if self.sha256 else f"md5:{self.md5}"


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(path: Path, sha256: str | None, md5: str | None) -> str | None:
    """None if ``path`` matches the checksum (or none is given), else a description."""
    if sha256:  # a published prefix (torchvision's file names carry 8 digits) or all 64
        got = file_digest(path, "sha256")
        ok = got.startswith(sha256.lower()) and len(sha256) >= 8
        return None if ok else f"sha256 {got}, expected {sha256}"
    if md5:
        got = file_digest(path, "md5")
        return None if got == md5.lower() else f"md5 {got}, expected {md5}"
    return None


class _Incomplete(Exception):
    """The connection ended early; the partial file is kept for a later resume."""


def _fetch(url: str, part: Path, progress: bool, timeout: float, resume: bool) -> bool:
    """Stream ``url`` into ``part``; returns True if it resumed an existing partial file."""
    have = part.stat().st_size if resume and part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial may be complete
            exc.close()
            return True
        raise
    with response:
        status = getattr(response, "status", None) or 200
        content_range = response.headers.get("Content-Range", "")
        resumed = bool(have) and status == 206 and content_range.startswith(f"bytes {have}-")
        if status == 206 and not resumed:
            raise _Incomplete(f"unexpected partial response ({content_range or 'no range'})")
        if not resumed:
            have = 0  # server ignored the Range header (or none was sent): start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        received = have
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                file=sys.stderr,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received < total:
            raise _Incomplete(f"connection closed after {received} of {total} bytes")
    return resumed


def download(
    urls: Sequence[str],
    dest: Path,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download ``dest`` from the first working mirror in ``urls`` and verify it.

    Returns at once, without any network access, if ``dest`` exists and matches the
    checksum. sha256 is used when given (the whole digest, or the leading digits a
    publisher gives, at least 8), else md5 (for files whose publishers only list md5).
    Raises :class:`StriateError` if every mirror fails or serves a file with the wrong
    checksum; a wrong file is deleted, an interrupted one is kept as ``.part`` so the
    next call resumes it.
    """
    dest = Path(dest)
    if dest.is_file() and _mismatch(dest, sha256, md5) is None:
        return dest
    if not urls:
        raise StriateError(f"no download address known for {dest.name}")
    part = dest.with_suffix(dest.suffix + ".part")
    created = _missing_folders(dest.parent)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise StriateError(
            f"cannot create {dest.parent} to download {dest.name}: {exc.strerror or exc}"
        ) from None
    try:
        return _download_into(urls, dest, part, sha256, md5, progress, timeout)
    except BaseException:
        _remove_empty(created)  # a partial file to resume keeps its folder
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first: the
    folders a download would create, and so the ones to remove again if it fails."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is still empty, so a failed download
    leaves no empty folder behind that looks like a data set is there."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (a partial download to resume), or gone already
            return


def _download_into(
    urls: Sequence[str],
    dest: Path,
    part: Path,
    sha256: str | None,
    md5: str | None,
    progress: bool,
    timeout: float,
) -> Path:
    """Try each mirror in turn into ``part``, then move it to ``dest`` once verified."""
    failures: list[str] = []
    for url in urls:
        resume = True
        while True:
            try:
                resumed = _fetch(url, part, progress, timeout, resume)
            except PermissionError as exc:
                raise StriateError(
                    f"cannot write {part}: {exc.strerror or exc}; choose a writable data folder"
                ) from None
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                exc.close()
                break
            except urllib.error.URLError as exc:
                failures.append(f"{url}: {exc.reason}")
                break
            except (_Incomplete, http.client.HTTPException, OSError) as exc:
                failures.append(f"{url}: {str(exc) or type(exc).__name__}")
                break
            problem = _mismatch(part, sha256, md5)
            if problem is None:
                os.replace(part, dest)
                return dest
            part.unlink(missing_ok=True)
            if resumed:  # a stale partial from another version: retry once from scratch
                resume = False
                continue
            failures.append(f"{url}: checksum mismatch ({problem})")
            break
    if any("checksum mismatch" in f for f in failures):
        raise StriateError(f"download of {dest.name} failed its checksum: {'; '.join(failures)}")
    raise StriateError(f"could not download {dest.name}: {'; '.join(failures)}")


# -- files a source needs, verified once and remembered -----------------------------------


_download_file = download


def _stamp_path(folder: Path) -> Path | None:
    """The checksum stamp for ``folder``, kept in the cache: data folders may be shared or
    read-only, so nothing but downloads is ever written into them."""
    key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    try:
        return cache_dir("verified") / f"{folder.name}-{key}.json"
    except StriateError:
        return None  # no writable cache: verify every time


def _read_stamps(folder: Path) -> dict[str, dict]:
    path = _stamp_path(folder)
    try:
        stamps = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _write_stamps(folder: Path, stamps: dict[str, dict]) -> None:
    path = _stamp_path(folder)
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(stamps, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ensure_files(
    folder: str | Path,
    files: Sequence[RemoteFile],
    download: bool,
    progress: bool = True,
) -> dict[str, Path]:
    """Make sure every file in ``files`` is present and correct in ``folder``.

    Present files are checksummed once; the result is remembered in a small json stamp in
    ``cache_dir("verified")``, keyed by size and modification time, so big files are not
    re-hashed on every run. Missing
    (or corrupt) files are downloaded when ``download`` is true.

    Returns: file name → path.
    """
    folder = Path(folder)
    missing = [f.filename for f in files if not (folder / f.filename).is_file()]
    if missing and not download:
        raise StriateError(
            f"{', '.join(missing)} not found in {folder}; "
            "run with download enabled or put the files there"
        )
    stamps = _read_stamps(folder)
    changed = False
    found: dict[str, Path] = {}
    for remote in files:
        path = folder / remote.filename
        if path.is_file():
            stamp = stamps.get(remote.filename)
            if stamp == {**_stat_key(path), "checksum": remote.checksum}:
                found[remote.filename] = path
                continue
            if _mismatch(path, remote.sha256, remote.md5) is None:
                stamps[remote.filename] = {**_stat_key(path), "checksum": remote.checksum}
                changed = True
                found[remote.filename] = path
                continue
            if not download:
                raise StriateError(
                    f"{path} is corrupt or incomplete (its checksum does not match "
                    f"{remote.checksum}); delete it or run with download enabled"
                )
        _download_file(remote.urls, path, remote.sha256, remote.md5, progress)
        stamps[remote.filename] = {**_stat_key(path), "checksum": remote.checksum}
        changed = True
        found[remote.filename] = path
    if changed:
        _write_stamps(folder, stamps)
    return found
