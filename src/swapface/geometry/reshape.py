"""Face-shape transfer: the target's jaw, chin and cheek outline moved toward the source's, the picture
warped smoothly around it, so identity comes from the face's shape as well as its texture.

The source's 3D mesh is aligned to the target's by a similarity fitted on the inner face (eyes, nose,
mouth corners: what pose and expression move together), so the outline difference left over is the
difference of face shape, seen in the target's pose. Outline vertices move by that difference times the
strength, inner ones less, and a ring of fixed anchors around the face keeps the background in place
beyond it; the image follows by one piecewise-affine warp.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from swapface.geometry.face_topology import FaceTopology
from swapface.geometry.mesh_warp import (
    bounding_rect,
    rasterise_ids,
    triangle_affines,
    warp_maps,
)

INNER = [33, 133, 362, 263, 1, 4, 6, 168, 61, 291, 13, 14, 2, 98, 327]  # eyes' corners, nose, mouth


def similarity_3d(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and translation taking (N, 3) ``src`` onto ``dst`` in least squares (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / max((a**2).sum() / len(src), 1e-9))
    return scale, rot, mu_d - scale * rot @ mu_s


def reshaped_points(target: np.ndarray, source: np.ndarray, topology: FaceTopology, strength: float) -> np.ndarray:
    """The target's (468, 2) mesh with its outline moved ``strength`` of the way to the source's shape.

    ``target`` and ``source`` are (468, 3) meshes (x, y, depth) in their own frames.
    """
    scale, rot, shift = similarity_3d(source[INNER].astype(np.float64), target[INNER].astype(np.float64))
    aligned = (scale * (rot @ source.astype(np.float64).T)).T + shift
    canon = topology.canonical
    eye_y = float(canon[[33, 263], 1].mean())
    below_eyes = np.clip((canon[:, 1] - eye_y) / 0.6, 0.0, 1.0)
    outward = np.clip((np.hypot(canon[:, 0], canon[:, 1] - 0.2) - 0.4) / 0.6, 0.0, 1.0)
    weight = (strength * below_eyes * outward)[:, None]
    return (target[:, :2] + weight * (aligned[:, :2] - target[:, :2])).astype(np.float32)


def warp_to_shape(frame: np.ndarray, before: np.ndarray, after: np.ndarray, interocular: float) -> np.ndarray:
    """``frame`` warped so the mesh points ``before`` move to ``after``; a fixed ring of anchors a face-width
    around keeps everything farther out unchanged. Returns a new frame."""
    centre = before.mean(0)
    hull = before[cv2.convexHull(before.astype(np.float32), returnPoints=False).ravel()]
    ring = centre + (hull - centre) * 1.6 + np.sign(hull - centre) * 0.2 * interocular
    src = np.concatenate([before, ring]).astype(np.float32)
    dst = np.concatenate([after, ring]).astype(np.float32)
    triangles = Delaunay(dst.astype(np.float64)).simplices.astype(np.int32)
    rect = bounding_rect(ring, frame.shape, margin=1)
    out = frame.copy()
    if rect is None:
        return out
    affines, ok = triangle_affines(dst, src, triangles)
    ids = rasterise_ids(dst, triangles, ok, rect)
    map_x, map_y, covered = warp_maps(ids, affines, rect)
    x, y, w, h = rect
    warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    region = out[y : y + h, x : x + w]
    region[covered] = warped[covered]
    return out
