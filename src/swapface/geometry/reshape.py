"""Face-shape transfer, so identity comes from the face's shape as well as its texture: the target's eyes,
nose and mouth placed and sized as the source's inside its own outline, and its jaw, chin and cheek
outline moved toward the source's; the picture follows by one piecewise-affine warp.

For the outline, the source's 3D mesh is aligned to the target's by a similarity fitted on the inner face
(eyes, nose, mouth corners: what pose and expression move together), so the outline difference left over
is the difference of face shape, seen in the target's pose. Outline vertices move by that difference times
the strength, inner ones less, and a ring of fixed anchors around the face keeps the background in place
beyond it. For the features, the similarity is fitted on the whole mesh, so what is left over is where
each feature sits, and how big it is, within the face. Each feature's move (a shift and a scaling, so its
expression stays the target's) is taken in full at its centre and less with distance; every vertex takes
the weighted moves of the features near it, one smooth field that fades to none at the outline, which stays.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from swapface.geometry.face_topology import FACE_OVAL, FaceTopology
from swapface.geometry.mesh_warp import (
    bounding_rect,
    rasterise_ids,
    triangle_affines,
    warp_maps,
)

INNER = [33, 133, 362, 263, 1, 4, 6, 168, 61, 291, 13, 14, 2, 98, 327]  # eyes' corners, nose, mouth
FEATURES = ((33, 133), (362, 263), (98, 327), (61, 291))  # corner pairs: right eye, left eye, nose wings, mouth
FEATURE_REACH = 0.3  # canonical inter-ocular distances: the spread of a feature's move around its centre
OUTLINE_FADE = 0.35  # canonical inter-ocular distances inside the outline over which the moves fade to none
MIN_MOVE = 0.05  # pixels: a vertex moved less than this is taken as still


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


def placed_features(target: np.ndarray, source: np.ndarray, topology: FaceTopology, strength: float,
                    kept: tuple[str, ...] = ()) -> np.ndarray:
    """The target's (468, 2) mesh with its eyes, nose and mouth moved ``strength`` of the way to the places
    and sizes the source's have within its face; the outline, and the regions named in ``kept`` (the
    target's own, untouched), stay.

    ``target`` and ``source`` are (468, 3) meshes (x, y, depth) in their own frames. Each feature (given by
    its two corners) moves by the difference of its corners' midpoint and scales about it by the ratio of
    its corners' distance: its shape, and so the target's expression, is kept.
    """
    pts = target.astype(np.float64)
    scale, rot, shift = similarity_3d(source.astype(np.float64), pts)
    aligned = (scale * (rot @ source.astype(np.float64).T)).T + shift
    canon = topology.canonical[:, :2].astype(np.float64)
    unit = float(np.linalg.norm(canon[[33, 133]].mean(0) - canon[[362, 263]].mean(0)))
    move = np.zeros((len(pts), 2))
    weights = np.zeros(len(pts))
    for a, b in FEATURES:
        centre, wanted = pts[[a, b], :2].mean(0), aligned[[a, b], :2].mean(0)
        ratio = np.linalg.norm(aligned[a, :2] - aligned[b, :2]) / max(float(np.linalg.norm(pts[a, :2] - pts[b, :2])), 1e-6)
        reach = np.linalg.norm(canon - canon[[a, b]].mean(0), axis=1) / (FEATURE_REACH * unit)
        weight = np.exp(-0.5 * reach**2)
        move += weight[:, None] * ((wanted - centre) + (ratio - 1.0) * (pts[:, :2] - centre))
        weights += weight
    move /= np.maximum(weights, 1.0)[:, None]  # a vertex between features takes their weighted moves
    to_outline = np.linalg.norm(canon[:, None] - canon[FACE_OVAL][None], axis=-1).min(1)
    move *= np.clip(to_outline / (OUTLINE_FADE * unit), 0.0, 1.0)[:, None]
    if kept:
        move[np.unique(topology.triangles[topology.triangles_in(kept)])] = 0.0
    return (pts[:, :2] + strength * move).astype(np.float32)


def warp_inside(frame: np.ndarray, before: np.ndarray, after: np.ndarray, triangles: np.ndarray,
                depth: np.ndarray) -> None:
    """Warp ``frame`` in place over the mesh's own triangles so the points ``before`` move to ``after``, where
    the outline stays: only the triangles that move are redrawn (far ones first, by ``depth``), at bicubic
    quality (the face's fine detail is kept)."""
    moving = (np.linalg.norm(after - before, axis=1) > MIN_MOVE)[triangles].any(1)
    if not moving.any():
        return
    rect = bounding_rect(after[np.unique(triangles[moving])], frame.shape, margin=2)
    if rect is None:
        return
    affines, ok = triangle_affines(after.astype(np.float32), before.astype(np.float32), triangles)
    order = np.argsort(-depth[triangles].mean(1))
    ids = rasterise_ids(after, triangles, ok & moving, rect, order=order)
    map_x, map_y, covered = warp_maps(ids, affines, rect)
    x, y, w, h = rect
    warped = cv2.remap(frame, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    np.copyto(frame[y : y + h, x : x + w], warped, where=covered[..., None])


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
    warped = cv2.remap(frame, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    region = out[y : y + h, x : x + w]
    region[covered] = warped[covered]
    return out
