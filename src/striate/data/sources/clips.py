"""One video clip on disk, read and written: a folder of frame images or a video file, with a
label per frame.

Layout: ``CLIP/`` is a folder of frame images, read in sorted name order, with
``labels.txt`` beside them; ``CLIP.mp4`` (or .avi, .mkv, .mov, .webm, .m4v) is a video file,
decoded with PyAV when it is installed, whose labels are in ``CLIP.labels.txt``. A label
file holds one class name per line, one line per frame, in frame order (blank lines at the
very end are ignored). :func:`load_clip` reads a clip; :func:`save_clip` writes one, atomically.
Datasets of clips are :mod:`striate.data.sources.video`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from striate.atomic import atomic_path, current_umask, fsync_dir, fsync_file, write_text
from striate.data.sources.folder import IMAGE_EXTENSIONS, read_image_file
from striate.data.transforms.functional import to_square
from striate.errors import StriateError

__all__ = [
    "LABELS_FILE",
    "LABELS_SUFFIX",
    "VIDEO_EXTENSIONS",
    "frame_files",
    "label_file",
    "load_clip",
    "read_labels",
    "save_clip",
]

LABELS_FILE = "labels.txt"
LABELS_SUFFIX = ".labels.txt"
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"})


# ---------------------------------------------------------------------------------------------
# reading


def read_labels(path: str | Path) -> list[str]:
    """One label per line (surrounding spaces stripped); blank lines at the end are ignored,
    a blank line in between is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StriateError(f"label file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StriateError(f"cannot read label file {path}: {exc}") from None
    labels = [line.strip() for line in lines]
    while labels and not labels[-1]:
        labels.pop()
    if "" in labels:
        raise StriateError(f"{path}: line {labels.index('') + 1} is empty; one label per line")
    if not labels:
        raise StriateError(f"label file {path} is empty")
    return labels


def frame_files(folder: Path) -> list[Path]:
    """The frame images of a clip folder, in name order (hidden files skipped)."""
    try:
        names = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise StriateError(f"cannot read clip folder {folder}: {exc.strerror or exc}") from None
    return [p for p in names if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


def _import_av():
    try:
        import av
    except ImportError:
        raise StriateError(
            "decoding video files needs PyAV (pip install av); or give the clip as a folder "
            "of frame images"
        ) from None
    return av


def _decode_video(
    path: Path,
    channels: int | None,
    image_size: int | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
) -> torch.Tensor:
    """(T, C, H, W) uint8 from a video file, with PyAV; each frame is resized to
    ``image_size`` as it is decoded, so memory holds one full-size frame at a time."""
    av = _import_av()
    if not path.is_file():
        raise StriateError(f"video file {path} not found")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise StriateError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
            if max_pixels is not None and pixels > max_pixels:
                raise StriateError(f"the frames of {path} have {pixels:,} pixels; at most "
                                   f"{max_pixels:,}")  # fmt: skip
            if channels is None:
                pix = stream.codec_context.format.name if stream.codec_context.format else ""
                channels = 1 if pix.startswith("gray") else 3
            fmt = "gray" if channels == 1 else "rgb24"
            for decoded in container.decode(stream):
                if max_frames is not None and len(frames) == max_frames:
                    raise StriateError(f"{path} has more than {max_frames} frames")
                array = decoded.to_ndarray(format=fmt)
                array = array[..., None] if array.ndim == 2 else array
                frame = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
                frames.append(to_square(frame, image_size) if image_size else frame)
    except StriateError:
        raise
    except Exception as exc:  # av.error.*, OSError, ValueError from broken streams
        raise StriateError(f"cannot decode video {path}: {exc}") from None
    if not frames:
        raise StriateError(f"video {path} holds no frames")
    return torch.stack(frames).contiguous()


def label_file(clip: Path) -> Path:
    """Where the labels of ``clip`` (a folder or a video file) are kept."""
    return clip / LABELS_FILE if clip.is_dir() else clip.with_name(clip.stem + LABELS_SUFFIX)


def load_clip(
    path: str | Path,
    channels: int | None = None,
    image_size: int | None = None,
    with_labels: bool = True,
    max_frames: int | None = None,
    max_pixels: int | None = None,
) -> tuple[torch.Tensor, list[str] | None]:
    """Read one clip: ``(frames uint8 (T, C, S, S), labels or None)``.

    ``path`` is a folder of frame images (sorted by name; labels in ``labels.txt``) or a
    video file (labels in ``NAME.labels.txt`` beside it). ``channels`` None keeps grayscale
    clips grayscale; ``image_size`` resizes (centre square crop) every frame. With
    ``with_labels`` the label file must exist and hold exactly one label per frame.
    ``max_frames`` and ``max_pixels`` (per frame) refuse larger clips with one line.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise StriateError(f"clip folder {path} holds no frame images")
        if max_frames is not None and len(files) > max_frames:
            raise StriateError(f"clip folder {path} has {len(files)} frames; at most {max_frames}")
        decoded = [read_image_file(f, channels, max_pixels) for f in files]
        if channels is None and any(f.shape[0] == 3 for f in decoded):
            decoded = [f.expand(3, -1, -1) for f in decoded]
        shapes = {tuple(f.shape) for f in decoded}
        if len(shapes) > 1 and image_size is None:
            raise StriateError(f"the frames of {path} differ in size: {sorted(shapes)[:2]}")
        frames = (
            torch.stack([to_square(f, image_size) for f in decoded])
            if image_size
            else torch.stack(decoded)
        )
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        frames = _decode_video(path, channels, image_size, max_frames, max_pixels)
    elif not path.exists():
        raise StriateError(f"clip {path} not found")
    else:
        kinds = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise StriateError(f"{path} is neither a folder of frames nor a video file ({kinds})")
    labels = None
    if with_labels:
        labels = read_labels(label_file(path))
        if len(labels) != len(frames):
            raise StriateError(
                f"clip {path} has {len(frames)} frames but {len(labels)} labels in "
                f"{label_file(path).name}; give one label per frame"
            )
    return frames, labels


# ---------------------------------------------------------------------------------------------
# writing


def _encode_video(frames: torch.Tensor, path: Path, fps: int) -> None:
    av = _import_av()
    gray = frames.shape[1] == 1
    rgb = frames.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous().numpy()
    codec = {".mkv": "ffv1", ".avi": "mpeg4", ".webm": "libvpx-vp9"}.get(
        path.suffix.lower(), "libx264"
    )
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = rgb.shape[2], rgb.shape[1]
        stream.pix_fmt = ("gray" if gray else "bgr0") if codec == "ffv1" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "0" if not gray else "1"}
        for image in rgb:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def save_clip(
    frames: torch.Tensor,
    path: str | Path,
    labels: Sequence[str] | None = None,
    fps: int = 10,
) -> Path:
    """Write a clip to disk in the layout :func:`load_clip` reads, and return its path.

    ``frames`` is uint8 (T, C, H, W) or (T, H, W). A ``path`` ending in a video extension
    (.mp4, .avi, .mkv, ...) is encoded with PyAV (.mkv lossless with FFV1; .mp4 H.264 needs
    even sides), its labels going to ``NAME.labels.txt``; any other path becomes a folder
    of ``frame-00000.png``... with ``labels.txt``. The folder must not exist yet; it is
    written beside its final place and renamed into it, so it appears complete or not at all.
    """
    from PIL import Image

    path = Path(path).expanduser()
    frames = frames.unsqueeze(1) if frames.dim() == 3 else frames
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise StriateError("frames must be a uint8 tensor (T, C, H, W) with 1 or 3 channels")
    if labels is not None and len(labels) != len(frames):
        raise StriateError(f"{len(frames)} frames but {len(labels)} labels")
    if labels is not None and any(not str(x).strip() or "\n" in str(x) for x in labels):
        raise StriateError("labels must be non-empty single-line names")
    text = "".join(f"{label}\n" for label in labels) if labels is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        with atomic_path(path) as tmp:
            _encode_video(frames, tmp, fps)
        if text is not None:
            write_text(label_file(path), text)
        return path
    if path.exists():
        raise StriateError(f"{path} already exists; save the clip under a new name")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 is for the temporary only
    try:
        for i, frame in enumerate(frames):
            array = frame.permute(1, 2, 0).numpy()
            Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(
                tmp / f"frame-{i:05d}.png"
            )
        if text is not None:
            (tmp / LABELS_FILE).write_text(text, encoding="utf-8")
        for written in tmp.iterdir():
            fsync_file(written)
        os.rename(tmp, path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
