"""Affine maths on point sets: similarity fits, inversion, application. Pure numpy/OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) mapping ``src`` points onto ``dst`` (least squares)."""
    m, _ = cv2.estimateAffinePartial2D(
        np.asarray(src, np.float32), np.asarray(dst, np.float32), method=cv2.LMEDS
    )
    if m is None:  # degenerate points: fall back to the closed form
        m = _umeyama(np.asarray(src, np.float64), np.asarray(dst, np.float64))
    return m.astype(np.float32)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = u @ np.diag(sign) @ vt
    var = (s**2).sum() / len(src)
    scale = (sig * sign).sum() / var if var > 0 else 1.0
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine."""
    return cv2.invertAffineTransform(np.asarray(m, np.float32)).astype(np.float32)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N×2) mapped by a 2×3 affine."""
    pts = np.asarray(points, np.float32)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
