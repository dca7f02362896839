"""CIFAR-10 from the official binary archive or from a JPEG export (image-folder layout).

* ``<data_dir>/cifar10/cifar-10-binary.tar.gz`` (downloaded if allowed; or an already
  extracted ``cifar-10-batches-bin/``): fixed-size records, 1 label byte + 3,072 pixel
  bytes (R, G, B planes of 32 x 32), read straight from the archive (nothing unpickled).
* ``<data_dir>/cifar10-jpeg/``: ``test/<class>/*.jpg`` and ``train/<class>/*.jpg`` or
  ``train.tar`` holding ``train/<class>/*.jpg``.

Decoded splits are cached as ``.safetensors`` in ``cache_dir("decoded")`` keyed by the
source files' sizes and modification times; a ``limit`` small enough decodes only the
images it needs and leaves the cache alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from striate.data.download import RemoteFile, ensure_files
from striate.data.paths import cache_dir
from striate.data.sources._split import LazyImages
from striate.data.transforms.functional import to_square
from striate.errors import StriateError

CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
BINARY = RemoteFile(
    "cifar-10-binary.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    md5="c32a1d4ab5d03f1284b67883e8d87530",
)
BINARY_DIR = "cifar-10-batches-bin"
RECORD = 1 + 3 * 32 * 32
_BATCHES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
_JPEG_EXT = (".jpg", ".jpeg", ".png")


# -- decoded-tensor cache ------------------------------------------------------------------


def _cache_key(name: str, sources: list[Path]) -> str:
    h = hashlib.sha1(name.encode())
    for p in sources:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _cache_path(name: str, key: str) -> Path:
    return cache_dir("decoded") / f"{name}-{key}.safetensors"


def load_cached(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """(images, labels, classes) from a cache file, or None if missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            classes = json.loads((f.metadata() or {})["classes"])
            return f.get_tensor("images"), f.get_tensor("labels"), classes
    except Exception:  # a damaged cache file is just a cache miss
        return None


def save_cached(path: Path, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
    """Write a cache file atomically (temporary name in the same folder, then rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        save_file(
            {"images": images.contiguous(), "labels": labels.contiguous()},
            str(tmp),
            metadata={"classes": json.dumps(classes)},
        )
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # caching is an optimisation: never fail the load


# -- official binary version ---------------------------------------------------------------


def parse_records(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,) from CIFAR-10 binary records."""
    if not raw or len(raw) % RECORD:
        raise StriateError(f"{name} is truncated or corrupt: {len(raw)} bytes is not N x {RECORD}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise StriateError(f"{name} is corrupt: label {labels.max()} outside 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _binary_members(source: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for name in sorted(wanted):
            if (source / name).is_file():
                yield name, (source / name).read_bytes()
        return
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                f = tar.extractfile(member) if member.isfile() and name in wanted else None
                if f is not None:
                    yield name, f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise StriateError(f"cannot read {source}: corrupt or truncated archive ({exc})") from None


def read_binary(source: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Both splits from ``cifar-10-binary.tar.gz`` or an extracted ``cifar-10-batches-bin``."""
    wanted = {n for names in _BATCHES.values() for n in names}
    batches = {
        name: parse_records(raw, f"{source}:{name}")
        for name, raw in _binary_members(source, wanted)
    }
    out = {}
    for part, names in _BATCHES.items():
        lost = [n for n in names if n not in batches]
        if lost:
            raise StriateError(f"{source} lacks {', '.join(lost)}; is it the binary version?")
        images = np.concatenate([batches[n][0] for n in names])
        labels = np.concatenate([batches[n][1] for n in names])
        out[part] = (torch.from_numpy(images), torch.from_numpy(labels))
    return out


def _load_binary(part: str, folder: Path, download: bool) -> LazyImages:
    extracted = folder / BINARY_DIR
    if extracted.is_dir() and not (folder / BINARY.filename).is_file():
        source = extracted
        key_files = sorted(p for p in extracted.glob("*.bin") if p.is_file())
    else:
        source = ensure_files(folder, [BINARY], download)[BINARY.filename]
        key_files = [source]
    key = _cache_key("bin", key_files)
    cached = load_cached(_cache_path(f"cifar10-{part}", key))
    if cached is None:
        decoded = read_binary(source)
        for name, (images, labels) in decoded.items():
            save_cached(_cache_path(f"cifar10-{name}", key), images, labels, CLASSES)
        cached = (*decoded[part], CLASSES)
    return LazyImages.of(cached[0], cached[1], list(CLASSES))


# -- JPEG export ---------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # PIL raises many types for broken files
        raise StriateError(f"cannot decode {name}: {exc}") from None
    if rgb.shape[:2] != (32, 32):
        rgb = to_square(torch.from_numpy(rgb.copy()).permute(2, 0, 1), 32).permute(1, 2, 0).numpy()
    return rgb


def _label(cls: str, name: str) -> int:
    if cls not in CLASSES:
        raise StriateError(f"{name}: unknown CIFAR-10 class folder {cls!r}")
    return CLASSES.index(cls)


def _jpeg_entries(folder: Path, part: str) -> tuple[list[tuple[str, int]], Path | None, dict]:
    """[(name, label)], the tar file (None: loose files) and tar member offsets."""
    split_dir = folder / part
    if split_dir.is_dir():
        files = sorted(p for p in split_dir.glob("*/*") if p.suffix.lower() in _JPEG_EXT)
        return [(str(p), _label(p.parent.name, str(p))) for p in files], None, {}
    tar_path = folder / f"{part}.tar"
    if not tar_path.is_file():
        raise StriateError(f"{folder} has neither {part}/ nor {part}.tar (CIFAR-10 JPEG layout)")
    try:
        with tarfile.open(tar_path, "r:") as tar:
            members = {
                m.name: (m.offset_data, m.size)
                for m in tar
                if m.isfile() and m.name.lower().endswith(_JPEG_EXT)
            }
    except (tarfile.TarError, OSError) as exc:
        raise StriateError(f"cannot read {tar_path}: corrupt or truncated tar ({exc})") from None
    entries = []
    for name in sorted(members):
        parts = name.removeprefix("./").split("/")
        if len(parts) != 3 or parts[0] != part:
            raise StriateError(f"{tar_path}: unexpected member {name} (want {part}/<class>/*)")
        entries.append((name, _label(parts[1], f"{tar_path}:{name}")))
    return entries, tar_path, members


def _load_jpeg(part: str, folder: Path) -> LazyImages:
    split_dir, tar_path = folder / part, folder / f"{part}.tar"
    if not split_dir.is_dir() and tar_path.is_file():  # the cache is keyed by the tar alone:
        path = _cache_path(f"cifar10jpeg-{part}", _cache_key("jpeg", [tar_path]))
        cached = load_cached(path)  # a hit skips reading 50,000 tar headers
        if cached is not None:
            return LazyImages.of(*cached)
    entries, tar_path, members = _jpeg_entries(folder, part)
    if not entries:
        raise StriateError(f"no images found for split {part!r} in {folder}")
    labels = torch.tensor([label for _, label in entries], dtype=torch.long)
    key_files = [tar_path] if tar_path else [Path(name) for name, _ in entries]
    path = _cache_path(f"cifar10jpeg-{part}", _cache_key("jpeg", key_files))

    def decode(index: list[int]) -> torch.Tensor:
        out = np.empty((len(index), 32, 32, 3), dtype=np.uint8)
        with open(tar_path, "rb") if tar_path else contextlib.nullcontext() as handle:
            for row, i in enumerate(index):
                name = entries[i][0]
                if handle is None:
                    data = Path(name).read_bytes()
                else:
                    offset, size = members[name]
                    handle.seek(offset)
                    data = handle.read(size)
                out[row] = _decode(data, f"{tar_path}:{name}" if tar_path else name)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def fetch(index: torch.Tensor | None) -> torch.Tensor:
        cached = load_cached(path)
        if cached is not None and torch.equal(cached[1], labels):
            return cached[0] if index is None else cached[0][index]
        if index is not None and len(index) <= len(labels) // 2:
            return decode(index.tolist())  # a small subset: decode just that, no cache
        images = decode(list(range(len(labels))))
        save_cached(path, images, labels, CLASSES)
        return images if index is None else images[index]

    return LazyImages(labels, list(CLASSES), fetch)


# -- entry point ---------------------------------------------------------------------------


def binary_present(root: Path) -> bool:
    folder = root / "cifar10"
    return (folder / BINARY.filename).is_file() or (folder / BINARY_DIR).is_dir()


def jpeg_present(root: Path) -> bool:
    return (root / "cifar10-jpeg" / "test").is_dir()


def load_cifar10(part: str, root: Path, download: bool) -> LazyImages:
    """The official binary version if present; else the JPEG export; else download."""
    if not binary_present(root) and jpeg_present(root):
        return _load_jpeg(part, root / "cifar10-jpeg")
    return _load_binary(part, root / "cifar10", download)
