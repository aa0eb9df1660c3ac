"""Temporal smoothing of points: the One Euro filter (smooth when still, responsive when moving)."""

from __future__ import annotations

import math

import numpy as np


class OneEuroFilter:
    """One Euro filter over arrays of points (any shape), in pixels, at a fixed frame rate.

    ``min_cutoff`` (Hz) sets the smoothing of a still face; ``beta`` how fast the cutoff rises with speed.
    ``scale`` (pixels) makes speed relative to the face's size, so small and large faces behave alike.
    """

    def __init__(self, fps: float = 30.0, min_cutoff: float = 1.2, beta: float = 0.6, d_cutoff: float = 1.0) -> None:
        self.dt = 1.0 / fps
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / self.dt)

    def reset(self) -> None:
        self._x = None
        self._dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        assert self._dx is not None  # set together with self._x
        dx = (x - self._x) / self.dt
        a_d = self._alpha(self.d_cutoff)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-6) if x.ndim >= 2 else np.abs(self._dx)
        a = self._alpha(self.min_cutoff + self.beta * speed * 100.0 / 30.0)
        self._x = (a * x + (1 - a) * self._x).astype(np.float32)
        return self._x.copy()
