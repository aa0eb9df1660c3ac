"""Seamless compositing: multi-band (Laplacian pyramid) blending and filling holes from the surroundings."""

from __future__ import annotations

import cv2
import numpy as np

from swapface.geometry.color import masked_low_pass
from swapface.geometry.fields import select, spread


def fill_from_surroundings(image: np.ndarray, holes: np.ndarray, donors: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (float32, H×W×C) with the ``holes`` pixels replaced by the nearby ``donors`` texture
    (a mask, or weights 0..1: how far each pixel is to be trusted).

    Normalised convolution at growing scales: each hole pixel takes the Gaussian-weighted mean of the
    donor pixels around it, from the smallest scale that reaches any (larger scales run on reduced grids).
    """
    fill = np.zeros_like(image)
    missing = holes.copy()
    s = max(sigma, 1.0)
    for _ in range(5):
        if not missing.any():
            break
        mean, density = masked_low_pass(image, donors, s)
        reach = missing & (density > 1e-3)
        fill[reach] = mean.reshape(image.shape)[reach]
        missing &= ~reach
        s *= 2.0
    return select(holes, fill, image)


def pyramid_levels(height: int, width: int, face_size: float) -> int:
    """How many bands: the coarsest about an eighth of the face wide, within what the region allows."""
    by_face = int(np.log2(max(face_size / 8.0, 1.0)))
    by_region = int(np.log2(max(min(height, width) / 4.0, 1.0)))
    return max(1, min(by_face, by_region, 6))


def multiband_blend(base: np.ndarray, overlay: np.ndarray, mask: np.ndarray, levels: int) -> np.ndarray:
    """``overlay`` composited onto ``base`` (float32 H×W×C) under ``mask`` (float32 H×W, 0..1), band by band.

    Fine detail switches over within a pixel or two while low frequencies (tone, light) cross over
    gradually, so an edge carries no visible seam and no halo.
    """
    gauss_mask: list[np.ndarray] = [mask.astype(np.float32)]
    lap_base: list[np.ndarray] = []
    lap_over: list[np.ndarray] = []
    b, o = base, overlay
    for _ in range(levels):
        size = (b.shape[1], b.shape[0])
        b_down, o_down = cv2.pyrDown(b), cv2.pyrDown(o)
        lap_base.append(b - cv2.pyrUp(b_down, dstsize=size))
        lap_over.append(o - cv2.pyrUp(o_down, dstsize=size))
        gauss_mask.append(cv2.pyrDown(gauss_mask[-1]))
        b, o = b_down, o_down
    channels = base.shape[2]
    m = spread(gauss_mask[-1], channels)
    out = b * (1 - m) + o * m
    for level in range(levels - 1, -1, -1):
        size = (lap_base[level].shape[1], lap_base[level].shape[0])
        m = spread(gauss_mask[level], channels)
        out = cv2.pyrUp(out, dstsize=size) + lap_base[level] * (1 - m) + lap_over[level] * m
    return out
