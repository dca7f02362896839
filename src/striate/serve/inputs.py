"""What a JSON request carries, decoded for a predictor: base64 images, and clips as a
video file, a zip of frames or a list of frames.

Images travel as base64 strings (a ``data:`` URL prefix is allowed); a clip as
``{"video": BASE64, "name": "clip.mp4"}``, ``{"zip": BASE64}`` (a zip of frame images) or
``{"frames": [BASE64, ...]}``. Everything is bounded before it is decoded: the number of
images, a zip's entries and unpacked bytes, a clip's frames (:class:`~striate.predict.Limits`);
images are bounded in pixels by the predictors, from their headers. Nothing is written to
disk but a video file, decoded from a temporary folder that is removed right after.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from striate.errors import StriateError
from striate.predict import Limits, Predictor
from striate.predict.base import no_unknown

MAX_UNZIPPED_BYTES = 64 * 2**20  # all frames of one zipped clip, unpacked
IMAGE_KINDS = ("image-classification", "image-captioning")  # inputs: base64 images
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif", ".m4v", ".ogv")


def decode_base64(value: Any, what: str) -> bytes:
    """The bytes of a base64 string (a ``data:...;base64,`` prefix is allowed)."""
    if not isinstance(value, str):
        raise StriateError(f"{what} must be a base64 string, not {type(value).__name__}")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StriateError(f"{what} is not valid base64") from None
    if not data:
        raise StriateError(f"{what} is empty")
    return data


def _images(inputs: Any, limits: Limits) -> list[bytes]:
    items = inputs if isinstance(inputs, list) else [inputs]
    if len(items) > limits.max_items:
        raise StriateError(f"{len(items)} images in one request; at most {limits.max_items}")
    return [decode_base64(item, f"image {n}") for n, item in enumerate(items, 1)]


def _zip_frames(data: bytes, limits: Limits) -> list[bytes]:
    """The frame images of a zip, in name order; entry count and unpacked size bounded."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise StriateError("the upload is not a zip file") from None
    with archive:
        entries = sorted(
            (
                i
                for i in archive.infolist()
                if not i.is_dir() and not Path(i.filename).name.startswith(".")
            ),
            key=lambda i: i.filename,
        )
        if not entries:
            raise StriateError("the zip holds no frames")
        if len(entries) > limits.max_frames:
            raise StriateError(f"the zip holds {len(entries)} files; at most {limits.max_frames}")
        if sum(i.file_size for i in entries) > MAX_UNZIPPED_BYTES:
            raise StriateError(f"the zip unpacks to more than {MAX_UNZIPPED_BYTES:,} bytes")
        frames = []
        for info in entries:
            with archive.open(info) as handle:  # the declared size may lie: read at most it
                content = handle.read(info.file_size + 1)
            if len(content) > info.file_size:
                raise StriateError(f"zip entry {info.filename} is larger than declared")
            frames.append(content)
        return frames


def _run_on_clip(predictor: Predictor, inputs: Any, options: dict[str, Any]) -> Any:
    if not isinstance(inputs, dict):
        raise StriateError(
            'a clip is {"video": BASE64, "name": FILE}, {"zip": BASE64} or '
            '{"frames": [BASE64, ...]}'
        )
    limits = predictor.limits
    if "frames" in inputs:
        frames = inputs["frames"]
        if not isinstance(frames, list) or not frames:
            raise StriateError('"frames" must be a non-empty list of base64 images')
        if len(frames) > limits.max_frames:
            raise StriateError(f"the clip has {len(frames)} frames; at most {limits.max_frames}")
        return predictor.predict(
            [decode_base64(f, f"frame {n}") for n, f in enumerate(frames, 1)], **options
        )
    if "zip" in inputs:
        return predictor.predict(
            _zip_frames(decode_base64(inputs["zip"], "zip"), limits), **options
        )
    if "video" in inputs:
        data = decode_base64(inputs["video"], "video")
        suffix = Path(str(inputs.get("name") or "clip.mp4")).suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise StriateError(f"a video file ends in {', '.join(VIDEO_SUFFIXES)}, not {suffix!r}")
        with tempfile.TemporaryDirectory(prefix="striate-upload-") as folder:
            path = Path(folder) / f"clip{suffix}"  # a fixed name: the client's is not used
            path.write_bytes(data)
            return predictor.predict(path, **options)
    raise StriateError(
        'a clip is {"video": BASE64, "name": FILE}, {"zip": BASE64} or {"frames": [BASE64, ...]}'
    )


def request_items(predictor: Predictor, inputs: Any, options: dict[str, Any]) -> list[Any]:
    """A JSON request's inputs as the list a list-taking ``predict`` accepts (images decoded
    from base64, texts as they are), after checking its option names against the task's."""
    no_unknown(options, predictor.options)  # before a key can collide with an argument
    if predictor.kind in IMAGE_KINDS:
        return _images(inputs, predictor.limits)
    return inputs if isinstance(inputs, list) else [inputs]


def run_prediction(predictor: Predictor, inputs: Any, options: dict[str, Any]) -> Any:
    """Decode a JSON request's inputs for the predictor's task and predict (in a worker
    thread: this blocks)."""
    if predictor.kind in IMAGE_KINDS:
        return predictor.predict(request_items(predictor, inputs, options), **options)
    no_unknown(options, predictor.options)
    if predictor.kind == "video-classification":
        return _run_on_clip(predictor, inputs, options)
    return predictor.predict(inputs, **options)
