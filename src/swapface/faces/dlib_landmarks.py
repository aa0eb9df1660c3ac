"""dlib's 68-point shape predictor: an independent landmarker, to measure our own landmarks and swaps against."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from swapface.models.builtin import dlib_model_path

MEASURE_WIDTH = 240  # pixels: smaller faces are measured on an upscaled crop (dlib returns whole pixels)
BOX_NUDGE = 0.04  # share of the box's size by which ``steady_points`` moves and scales its starting boxes


class Dlib68Landmarker:
    """68 points (iBUG layout) inside a given face box; a different model family from the mesh we swap with.

    dlib places points on whole pixels: on a face 60 px wide that is ±2 % of the eye distance of pure
    rounding, more than the wobble being measured. Small faces are therefore measured on a crop
    upscaled to ``MEASURE_WIDTH``, and the points mapped back with sub-pixel precision.
    """

    def __init__(self) -> None:
        self._predictor: Any = None

    def points(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The 68 landmarks (float32, 68×2, frame pixels) of the face in ``box`` (x1, y1, x2, y2)."""
        import dlib

        if self._predictor is None:
            self._predictor = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks")))
        x1, y1, x2, y2 = (float(v) for v in box)
        scale = max(1.0, MEASURE_WIDTH / max(x2 - x1, 1.0))
        margin = 0.5 * (x2 - x1)
        h, w = frame.shape[:2]
        cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
        cx2, cy2 = min(w, int(np.ceil(x2 + margin))), min(h, int(np.ceil(y2 + margin)))
        crop = frame[cy1:cy2, cx1:cx2]
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        rect = dlib.rectangle(*(round(v) for v in ((x1 - cx1) * scale, (y1 - cy1) * scale, (x2 - cx1) * scale,
                                                    (y2 - cy1) * scale)))
        shape = self._predictor(np.ascontiguousarray(crop), rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        return (points / scale + np.array([cx1, cy1], np.float32)).astype(np.float32)

    def steady_points(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The mean of :meth:`points` over eleven boxes around ``box`` (moved by ``BOX_NUDGE`` of its size on a
        3×3 grid, and scaled by 1 ± ``BOX_NUDGE``): the jitter judge.

        dlib's cascade starts from the box, and on a changing image its answer jumps with small changes
        that start; averaging over nearby starts keeps the face's own motion and drops most of that. On
        carphone with a known whole-frame wobble of 0.0159 eye distances a frame, one box measures 0.0233 and
        the mean of eleven 0.0179; with pixel noise alone (σ = 2) 0.0138 and 0.0055."""
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        starts = [(dx, dy, 1.0) for dx in (-1, 0, 1) for dy in (-1, 0, 1)] + [(0, 0, 1 - BOX_NUDGE), (0, 0, 1 + BOX_NUDGE)]
        total = np.zeros((68, 2), np.float64)
        for dx, dy, size in starts:
            mx, my = cx + dx * BOX_NUDGE * w, cy + dy * BOX_NUDGE * h
            nudged = np.array([mx - size * w / 2, my - size * h / 2, mx + size * w / 2, my + size * h / 2])
            total += self.points(frame, nudged)
        return (total / len(starts)).astype(np.float32)


def interocular_68(points: np.ndarray) -> float:
    """Distance between the eye centres of a 68-point set (points 36-41 and 42-47)."""
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
