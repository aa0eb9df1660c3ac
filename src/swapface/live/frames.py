"""The wire format of live frames: a small fixed header, then a JPEG.

Camera → engine: ``<d`` the sender's clock when the camera frame was taken (echoed back untouched), then a JPEG.
Engine → viewer: ``<dfI`` that clock, the engine's milliseconds for the frame, the frames dropped so far
(newer frames overtook them), then the swapped JPEG. Little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.errors import InputError

IN_HEADER = struct.Struct("<d")
OUT_HEADER = struct.Struct("<dfI")
JPEG_QUALITY = 80
MAX_SIDE = 1920  # larger camera frames are refused: a live stream is at most full HD


@dataclass(frozen=True)
class Result:
    """What goes back to the viewer for one frame."""

    clock: float
    engine_ms: float
    dropped: int
    jpeg: bytes

    def encode(self) -> bytes:
        return OUT_HEADER.pack(self.clock, self.engine_ms, self.dropped) + self.jpeg

    @classmethod
    def decode(cls, message: bytes) -> Result:
        clock, engine_ms, dropped = OUT_HEADER.unpack_from(message)
        return cls(clock, engine_ms, dropped, bytes(message[OUT_HEADER.size:]))


def pack_frame(clock: float, jpeg: bytes) -> bytes:
    """A camera frame message."""
    return IN_HEADER.pack(clock) + jpeg


def unpack_frame(message: bytes) -> tuple[float, bytes]:
    """(clock, JPEG) of a camera frame message; InputError when it is too short to be one."""
    if len(message) <= IN_HEADER.size:
        raise InputError("a live frame message is an 8-byte clock followed by a JPEG", code="bad_frame")
    return IN_HEADER.unpack_from(message)[0], message[IN_HEADER.size:]


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB pixels of a JPEG (or PNG) camera frame; InputError when unreadable or too large."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("a live frame is not a readable JPEG", code="bad_frame")
    if max(bgr.shape[:2]) > MAX_SIDE:
        raise InputError(f"live frames may be at most {MAX_SIDE} pixels on a side", code="bad_frame")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """A JPEG of an RGB frame."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("the frame could not be encoded", code="bad_frame")
    return data.tobytes()
