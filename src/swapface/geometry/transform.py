"""Affine maths on point sets: similarity fits, inversion, application. Pure numpy/OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``, least squares on all points.

    Every point counts (as in InsightFace's alignment): a robust estimator that may drop a landmark
    makes the crop jump from frame to frame when which point it drops changes.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = float((s**2).sum())
    if var <= 1e-12:
        return np.hstack([np.eye(2), (mu_d - mu_s)[:, None]]).astype(np.float32)
    # closed form of min Σ |[a −b; b a]·s + t − d|²: a = Σ s·d / Σ|s|², b = Σ s×d / Σ|s|²
    a = float((s * d).sum()) / var
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var
    rot = np.array([[a, -b], [b, a]])
    t = mu_d - rot @ mu_s
    return np.hstack([rot, t[:, None]]).astype(np.float32)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine."""
    return cv2.invertAffineTransform(np.asarray(m, np.float32)).astype(np.float32)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N×2) mapped by a 2×3 affine."""
    pts = np.asarray(points, np.float32)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def move_box(m: np.ndarray, box: np.ndarray) -> np.ndarray:
    """An x1, y1, x2, y2 box carried by a similarity: its centre mapped, its sides scaled (it stays upright)."""
    b = np.asarray(box, np.float32)
    centre = apply_affine(m, ((b[:2] + b[2:]) / 2)[None])[0]
    half = (b[2:] - b[:2]) / 2 * float(np.sqrt(abs(np.linalg.det(np.asarray(m, np.float64)[:, :2]))))
    return np.concatenate([centre - half, centre + half]).astype(np.float32)
