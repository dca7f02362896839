"""Small inputs the predictor, API and browser tests share (made here, never read from disk),
and how their answers are compared."""

from __future__ import annotations

import base64
import io
import math
import struct
import zipfile
import zlib

from PIL import Image, ImageDraw


def png_bytes(size: tuple[int, int] = (40, 40), mode: str = "L", digit: bool = True) -> bytes:
    """A PNG: a white stroke like a hand-drawn 1 on black (or plain grey)."""
    image = Image.new(mode, size, 0 if digit else 128)
    if digit:
        ImageDraw.Draw(image).line(
            [(size[0] // 2, 4), (size[0] // 2, size[1] - 4)], fill=255, width=4
        )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header claiming side x side pixels (a decompression bomb's shape) with a
    tiny body: refusing it must not decode anything."""
    small = png_bytes((1, 1), digit=False)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return small[:8] + patched + small[8 + 25 :]


def frames_zip(count: int, size: int = 16) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(count):
            archive.writestr(f"frame-{i:03d}.png", png_bytes((size, size)))
    return out.getvalue()


def mp4_bytes(frames: int = 5, side: int = 16) -> bytes:
    """A tiny MPEG-4 video (PyAV), ``frames`` grey frames getting lighter."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        for i in range(frames):
            pixels = np.full((side, side, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def same_results(batched, alone) -> bool:
    """Equal JSON results, floats to float32 rounding: a batch's forward pass may round the
    last bit differently from one image's (the CPU kernels block by batch size), never more;
    classes, their order, and everything else must be equal."""
    if isinstance(batched, float) and isinstance(alone, float):
        return math.isclose(batched, alone, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(batched, dict) and isinstance(alone, dict):
        return batched.keys() == alone.keys() and all(
            same_results(batched[k], alone[k]) for k in alone
        )
    if isinstance(batched, list) and isinstance(alone, list):
        return len(batched) == len(alone) and all(map(same_results, batched, alone))
    return type(batched) is type(alone) and batched == alone
