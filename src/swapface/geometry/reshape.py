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

from dataclasses import dataclass

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
MAP_STEP = 2  # pixels between the nodes where a face warp's map is worked out (it is interpolated between them)


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


@dataclass(frozen=True)
class FeatureLayout:
    """How far each feature's move reaches over the mesh, fixed by the topology (and the regions kept still):
    worked out once, not per frame."""

    shares: np.ndarray  # (len(FEATURES), 468) share of each feature's move each vertex takes

    @classmethod
    def of(cls, topology: FaceTopology, kept: tuple[str, ...] = ()) -> FeatureLayout:
        """Each feature's move in full at its centre, less with distance (FEATURE_REACH); a vertex between
        features takes their weighted moves; none at the outline (fading over OUTLINE_FADE) or in ``kept``."""
        canon = topology.canonical[:, :2].astype(np.float64)
        unit = float(np.linalg.norm(canon[[33, 133]].mean(0) - canon[[362, 263]].mean(0)))
        reach = np.stack([np.linalg.norm(canon - canon[[a, b]].mean(0), axis=1) for a, b in FEATURES])
        weights = np.exp(-0.5 * (reach / (FEATURE_REACH * unit)) ** 2)
        shares = weights / np.maximum(weights.sum(0), 1.0)
        to_outline = np.linalg.norm(canon[:, None] - canon[FACE_OVAL][None], axis=-1).min(1)
        shares *= np.clip(to_outline / (OUTLINE_FADE * unit), 0.0, 1.0)
        if kept:
            shares[:, np.unique(topology.triangles[topology.triangles_in(kept)])] = 0.0
        return cls(shares)


def placed_features(target: np.ndarray, source: np.ndarray, layout: FeatureLayout, strength: float) -> np.ndarray:
    """The target's (468, 2) mesh with its eyes, nose and mouth moved ``strength`` of the way to the places
    and sizes the source's have within its face; the outline, and the regions the layout keeps (the
    target's own, untouched), stay.

    ``target`` and ``source`` are (468, 3) meshes (x, y, depth) in their own frames. Each feature (given by
    its two corners) moves by the difference of its corners' midpoint and scales about it by the ratio of
    its corners' distance: its shape, and so the target's expression, is kept.
    """
    pts = target.astype(np.float64)
    scale, rot, shift = similarity_3d(source.astype(np.float64), pts)
    aligned = (scale * (rot @ source.astype(np.float64).T)).T + shift
    move = np.zeros((len(pts), 2))
    for share, (a, b) in zip(layout.shares, FEATURES):
        centre, wanted = pts[[a, b], :2].mean(0), aligned[[a, b], :2].mean(0)
        ratio = np.linalg.norm(aligned[a, :2] - aligned[b, :2]) / max(float(np.linalg.norm(pts[a, :2] - pts[b, :2])), 1e-6)
        move += share[:, None] * ((wanted - centre) + (ratio - 1.0) * (pts[:, :2] - centre))
    return (pts[:, :2] + strength * move).astype(np.float32)


def warp_inside(frame: np.ndarray, before: np.ndarray, after: np.ndarray, triangles: np.ndarray,
                depth: np.ndarray, only: np.ndarray | None = None) -> None:
    """Warp ``frame`` in place over the mesh's own triangles so the points ``before`` move to ``after``, where
    the outline stays: only the triangles that move (and are in ``only``, a per-triangle mask, when given)
    are redrawn (far ones first, by ``depth``), at bicubic quality (the face's fine detail is kept).

    The piecewise-affine map is continuous (neighbouring triangles share corners), so it is worked out on a
    grid of every MAP_STEP-th pixel, the identity where nothing moves, and interpolated between the nodes."""
    moving = (np.linalg.norm(after - before, axis=1) > MIN_MOVE)[triangles].any(1)
    if only is not None:
        moving &= only
    if not moving.any():
        return
    rect = bounding_rect(after[np.unique(triangles[moving])], frame.shape, margin=2)
    if rect is None:
        return
    x, y, w, h = rect
    step = MAP_STEP
    nodes = (-(-w // step) + 1, -(-h // step) + 1)  # node i sits on rect pixel i * step; the last one past the edge
    on_grid = ((after - (x, y)) / step).astype(np.float32)
    drawn = triangles[moving]  # only these are solved and drawn; ids below index them
    affines, ok = triangle_affines(on_grid, before.astype(np.float32), drawn)
    ids = rasterise_ids(on_grid, drawn, ok, (0, 0) + nodes, order=np.argsort(-depth[drawn].mean(1)))
    grid_x, grid_y, covered = warp_maps(ids, affines, (0, 0) + nodes)
    grid_x = np.where(covered, grid_x, x + step * np.arange(nodes[0], dtype=np.float32)[None, :])
    grid_y = np.where(covered, grid_y, y + step * np.arange(nodes[1], dtype=np.float32)[:, None])
    to_grid = np.array([[1.0 / step, 0.0, 0.0], [0.0, 1.0 / step, 0.0]], np.float32)  # rect pixel (u, v) reads node (u, v) / step
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    map_x = cv2.warpAffine(grid_x, to_grid, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    map_y = cv2.warpAffine(grid_y, to_grid, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    frame[y : y + h, x : x + w] = cv2.remap(frame, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


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
