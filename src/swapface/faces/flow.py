"""Landmarks carried from one video frame to the next by optical flow, and fused with the new mesh fit.

A per-frame mesh fit is noisy (a few percent of the eye distance, independently each frame), and a
low-pass filter on it lags behind the head: both show as wobble of the swapped face against the real
one. Pyramidal Lucas-Kanade flow follows the pixels themselves, so it moves with the head without lag
or noise, but drifts over time. Fusing the two (a complementary filter) keeps the flow's frame-to-frame
motion and the mesh's long-term position: ``fused = flowed + gain · (mesh − flowed)``. A point whose
flow fails the forward-backward check takes the mesh's position.
"""

from __future__ import annotations

import cv2
import numpy as np

# Share of the mesh in the fused landmarks per frame, for points the flow followed well. Measured on the
# carphone clip (landmark jitter of the swap, see docs/benchmarks.md): 0.05 → 0.0257, 0.15 → 0.0254,
# 0.3 → 0.0259, 0.5 → 0.0268, mesh alone 0.0293; fusing the flow of one similarity motion instead of
# per-point flow was worse (0.0279). A One Euro filter after the fusion only adds lag (0.0334).
FLOW_GAIN = 0.15
MAX_FLOW_ERROR = 0.04  # forward-backward disagreement (inter-ocular distances) above which a point's flow is distrusted


def follow(previous: np.ndarray, current: np.ndarray, points: np.ndarray, interocular: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of the previous grey frame followed into the current one, and which were followed reliably."""
    win = int(np.clip(round(interocular * 0.5) | 1, 9, 31))
    params = {"winSize": (win, win), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
    start = np.ascontiguousarray(points, np.float32).reshape(-1, 1, 2)
    ahead, ok, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, **params)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, ahead, None, **params)
    error = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
    good = (ok.reshape(-1) == 1) & (ok_back.reshape(-1) == 1) & (error < MAX_FLOW_ERROR * max(interocular, 1.0))
    return ahead.reshape(-1, 2).astype(np.float32), good


def fuse(flowed: np.ndarray, good: np.ndarray, mesh: np.ndarray, gain: float = FLOW_GAIN) -> np.ndarray:
    """The complementary filter: flowed points pulled towards the mesh by ``gain``; badly followed points are the mesh's."""
    weight = np.where(good, gain, 1.0).astype(np.float32)[:, None]
    return (flowed + weight * (mesh - flowed)).astype(np.float32)
