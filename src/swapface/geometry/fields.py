"""A per-pixel field laid over a colour image's channels, without numpy's slow trailing-axis broadcast.

``image * field[..., None]`` on an (h, w, 3) image makes numpy run its inner loop three values at a time, once per
pixel: about seven times slower than the same product of two (h, w, 3) arrays. The renderer weighs colour images by
masks and ramps dozens of times a face, so a field is spread over the channels once (OpenCV's merge, one pass) and
the arithmetic runs on equal shapes. The values are the same float products, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np


def spread(field: np.ndarray, channels: int = 3) -> np.ndarray:
    """An (h, w) or (h, w, 1) field repeated over ``channels`` channels: (h, w, channels), its dtype kept."""
    plane = np.ascontiguousarray(field.reshape(field.shape[:2]))
    return cv2.merge([plane] * channels)


def select(where: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``np.where(where[..., None], inside, outside)`` for two (h, w, C) images of one dtype: a copy of ``outside``
    with ``inside``'s pixels laid in where the (h, w) bool mask ``where`` is set."""
    out = np.array(outside, copy=True, order="C")
    cv2.copyTo(np.ascontiguousarray(inside), where.view(np.uint8), out)
    return out
