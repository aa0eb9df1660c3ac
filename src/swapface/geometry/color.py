"""Colour statistics and transfer in CIELAB (perceptual), and masks' feathering."""

from __future__ import annotations

import cv2
import numpy as np


def lab_stats(image: np.ndarray, mask: np.ndarray, *, is_lab: bool = False) -> np.ndarray:
    """Mean and standard deviation of L, a, b inside ``mask`` (bool): a (2, 3) float32 array.

    ``is_lab``: the image is already CIELAB (8-bit OpenCV scale), so it is not converted again.
    """
    mask8 = mask.view(np.uint8) if mask.dtype == np.bool_ else mask.astype(np.uint8)
    if cv2.countNonZero(mask8) < 16:
        return np.array([[128, 128, 128], [1, 1, 1]], np.float32)
    mean, std = cv2.meanStdDev(image if is_lab else cv2.cvtColor(image, cv2.COLOR_RGB2LAB), mask=mask8)
    return np.stack([mean.reshape(3), std.reshape(3) + 1e-3]).astype(np.float32)


def transfer_lab(
    image: np.ndarray, source_stats: np.ndarray, target_stats: np.ndarray, strength: float = 1.0, *, is_lab: bool = False
) -> np.ndarray:
    """Shift and scale ``image``'s LAB statistics from ``source_stats`` to ``target_stats`` (Reinhard); RGB out.

    ``is_lab``: the image is already CIELAB (8-bit OpenCV scale), so it is not converted again.
    """
    ratio = np.clip(target_stats[1] / source_stats[1], 0.5, 2.0)
    levels = np.arange(256, dtype=np.float32)[:, None]  # the transfer is per channel: one lookup table each
    moved = (levels - source_stats[0]) * ratio + target_stats[0]
    table = np.clip(levels + strength * (moved - levels) + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    lab = cv2.LUT(image if is_lab else cv2.cvtColor(image, cv2.COLOR_RGB2LAB), table)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def match_lab(image: np.ndarray, mask: np.ndarray, target_stats: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """``image`` with its LAB statistics inside ``mask`` moved to ``target_stats`` (one colour conversion each way)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    return transfer_lab(lab, lab_stats(lab, mask, is_lab=True), target_stats, strength, is_lab=True)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool) with every region it encloses filled: what a flood from the border does not reach."""
    h, w = mask.shape
    canvas = np.zeros((h + 2, w + 2), np.uint8)
    canvas[1:-1, 1:-1] = mask
    cv2.floodFill(canvas, None, (0, 0), 1)
    return mask | (canvas[1:-1, 1:-1] == 0)


def feather(mask: np.ndarray, size: float, blur: float, padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """A soft float32 mask from a hard one: shrunk by ``padding`` percent per side (top, right, bottom, left)
    and an inset proportional to ``blur``, then Gaussian-feathered; ``size`` is the face's size in pixels."""
    hard: np.ndarray = mask.astype(np.uint8)
    if any(padding):
        ys, xs = np.nonzero(hard)
        if len(xs):
            top, right, bottom, left = (p / 100.0 for p in padding)
            x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
            w, h = x2 - x1, y2 - y1
            hard[: int(y1 + top * h), :] = 0
            hard[int(y2 - bottom * h) + 1 :, :] = 0
            hard[:, : int(x1 + left * w)] = 0
            hard[:, int(x2 - right * w) + 1 :] = 0
    inset = int(round(size * blur * 0.06))
    if inset > 0:
        hard = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1, 2 * inset + 1)))
    sigma = max(size * blur * 0.04, 0.5)
    soft = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(soft, 0.0, 1.0)


def masked_low_pass(image: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian low-pass of ``image`` (float32 H×W×C) over the pixels ``weights`` marks (normalised
    convolution), and the local weight density (0..1): how much of each estimate came from marked pixels.

    Computed at reduced resolution when ``sigma`` is large (the result is smooth anyway)."""
    h, w = weights.shape
    factor = max(1, int(sigma // 3))
    wt = weights.astype(np.float32)
    if factor > 1:
        small = (max(w // factor, 1), max(h // factor, 1))
        img_s = cv2.resize(image * wt[..., None], small, interpolation=cv2.INTER_AREA)
        wt_s = cv2.resize(wt, small, interpolation=cv2.INTER_AREA)
        s = sigma / factor
        num = cv2.resize(cv2.GaussianBlur(img_s, (0, 0), s), (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(cv2.GaussianBlur(wt_s, (0, 0), s), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        num = cv2.GaussianBlur(image * wt[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(wt, (0, 0), sigma)
    num = num.reshape(h, w, -1)
    return num / np.maximum(den, 1e-6)[..., None], den


def srgb_to_lab(image: np.ndarray) -> np.ndarray:
    """sRGB (8-bit, or float on the 0..255 scale) → float32 CIELAB (L 0..100, a and b about −128..127)."""
    scaled = image.astype(np.float32) * np.float32(1.0 / 255.0)
    return cv2.cvtColor(np.clip(scaled, 0.0, 1.0, out=scaled), cv2.COLOR_RGB2LAB)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """Float32 CIELAB → 8-bit sRGB (out-of-gamut colours clipped)."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
