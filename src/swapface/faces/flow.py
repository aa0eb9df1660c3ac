"""Landmarks carried from one video frame to the next by optical flow, and fused with the new mesh fit.

A per-frame mesh fit is noisy (a few percent of the eye distance, independently each frame), and a
low-pass filter on it lags behind the head: both show as wobble of the swapped face against the real
one. Pyramidal Lucas-Kanade flow follows the pixels themselves, so it moves with the head without lag
or noise, but drifts over time. Fusing the two (a complementary filter) keeps the flow's frame-to-frame
motion and the mesh's long-term position: ``fused = flowed + gain · (mesh − flowed)``. A point whose
flow fails the forward-backward check takes the mesh's position.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Share of the mesh in the fused landmarks per frame, for points the flow followed well. Measured on the
# carphone clip (landmark jitter of the swap, see docs/benchmarks.md): 0.05 → 0.0257, 0.15 → 0.0254,
# 0.3 → 0.0259, 0.5 → 0.0268, mesh alone 0.0293; fusing the flow of one similarity motion instead of
# per-point flow was worse (0.0279). A One Euro filter after the fusion only adds lag (0.0334).
FLOW_GAIN = 0.15
MAX_FLOW_ERROR = 0.04  # forward-backward disagreement (inter-ocular distances) above which a point's flow is distrusted


FLOW_INTEROCULAR = 32.0  # the flow runs on a crop around the face scaled so the eyes are about this far apart (pixels)
FLOW_WINDOW = 13  # Lucas-Kanade window (pixels of that crop)
# Mesh points the flow itself follows; the others move with their nearest followed ones. At FLOW_INTEROCULAR the
# 468 points lie ~4 px apart under a 13 px window, so most of that work was repeated: carphone's landmark jitter
# through `swapface run` 0.01447 with all points, 0.01455 / 0.01436 / 0.01444 following 160 / 100 / 60 (noise is
# ±0.003), the stage clip's 0.0255 → 0.0250, temporal change ratios the same; the flow's CPU time halves.
FOLLOWED_POINTS = 100
NEIGHBOURS = 3  # followed points an unfollowed one moves with


@lru_cache(maxsize=1)
def followed_points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which mesh points the flow follows (``FOLLOWED_POINTS`` of them, spread evenly over the canonical face by
    farthest-point sampling from its top), and for every point its ``NEIGHBOURS`` nearest followed ones (indices
    into the followed points) with weights by inverse square distance on the canonical layout."""
    from swapface.geometry.face_topology import face_topology

    layout = face_topology().canonical[:, :2].astype(np.float64)
    chosen = [int(np.argmin(layout[:, 1]))]
    nearest = np.linalg.norm(layout - layout[chosen[0]], axis=1)
    while len(chosen) < FOLLOWED_POINTS:
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(layout - layout[chosen[-1]], axis=1))
    followed = np.array(sorted(chosen))
    distance = np.linalg.norm(layout[:, None] - layout[followed][None], axis=2)
    near = np.argsort(distance, axis=1)[:, :NEIGHBOURS]
    weights = 1.0 / np.maximum(np.take_along_axis(distance, near, 1), 1e-3) ** 2
    weights = (weights / weights.sum(1, keepdims=True)).astype(np.float32)
    for table in (followed, near, weights):
        table.flags.writeable = False  # shared by every track: computed once, never written
    return followed, near, weights


def follow(previous: np.ndarray, current: np.ndarray, points: np.ndarray, interocular: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of the previous frame (RGB or grey) followed into the current one, and which were followed reliably.

    A face mesh's 468 points: ``FOLLOWED_POINTS`` of them are followed, the others move by the weighted shift of
    their nearest followed ones and count as followed reliably where all of those were. Other point sets are
    followed whole.
    """
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    followed, near, weights = followed_points()
    if len(pts) != len(near):
        return follow_each(previous, current, pts, interocular)
    moved, good = follow_each(previous, current, pts[followed], interocular)
    shift = moved - pts[followed]
    out = pts + (shift[near] * weights[..., None]).sum(1)
    out[followed] = moved
    reliable = good[near].all(1)
    reliable[followed] = good
    return out.astype(np.float32), reliable


def follow_each(previous: np.ndarray, current: np.ndarray, points: np.ndarray, interocular: float) -> tuple[np.ndarray, np.ndarray]:
    """Every point of the previous frame followed by pyramidal Lucas-Kanade into the current one (a forward and
    a backward pass), and which were followed reliably.

    The flow runs on a crop around the points, scaled down to ``FLOW_INTEROCULAR``: its cost then does not
    grow with the face's size (a face filling a 720p frame costs what a small one does).
    """
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    h, w = current.shape[:2]
    lo, hi = pts.min(0), pts.max(0)
    margin = 0.3 * float(max(hi - lo))
    x1, y1 = (max(0, int(v - margin)) for v in lo)
    x2, y2 = min(w, int(hi[0] + margin) + 1), min(h, int(hi[1] + margin) + 1)
    if x2 - x1 < 8 or y2 - y1 < 8:
        return pts.copy(), np.zeros(len(pts), bool)
    scale = min(1.0, FLOW_INTEROCULAR / max(interocular, 1.0))
    size = (max(8, round((x2 - x1) * scale)), max(8, round((y2 - y1) * scale)))
    # grey before shrinking: one channel to average instead of three (the costliest step of a followed frame)
    a = cv2.resize(_grey(previous[y1:y2, x1:x2]), size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(_grey(current[y1:y2, x1:x2]), size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / (x2 - x1), size[1] / (y2 - y1)
    start = ((pts - [x1, y1]) * [sx, sy]).astype(np.float32).reshape(-1, 1, 2)
    window = (FLOW_WINDOW, FLOW_WINDOW)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
    ahead, ok, _ = cv2.calcOpticalFlowPyrLK(a, b, start, None, winSize=window, maxLevel=2, criteria=criteria)  # type: ignore[call-overload, unused-ignore]
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(b, a, ahead, None, winSize=window, maxLevel=2, criteria=criteria)  # type: ignore[call-overload, unused-ignore]
    error = np.linalg.norm((back - start).reshape(-1, 2), axis=1) / sx
    good = (ok.reshape(-1) == 1) & (ok_back.reshape(-1) == 1) & (error < MAX_FLOW_ERROR * max(interocular, 1.0))
    moved = ahead.reshape(-1, 2) / [sx, sy] + [x1, y1]
    return moved.astype(np.float32), good


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def fuse(flowed: np.ndarray, good: np.ndarray, mesh: np.ndarray, gain: float = FLOW_GAIN) -> np.ndarray:
    """The complementary filter: flowed points pulled towards the mesh by ``gain``; badly followed points are the mesh's."""
    weight = np.where(good, gain, 1.0).astype(np.float32)[:, None]
    return (flowed + weight * (mesh - flowed)).astype(np.float32)
