"""Piecewise-affine warping over a triangulated landmark mesh, as one remap per face.

A triangle-id map of the destination region is rasterised once per face; each pixel then reads its
triangle's destination→source affine from a table, giving dense remap coordinates in one numpy gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

NO_TRIANGLE = np.uint16(65535)


@dataclass(frozen=True)
class Triangulation:
    """Triangles as vertex-index triples, and which of them cover openings (eyes, mouth) to keep from the target."""

    triangles: np.ndarray  # (T, 3) int32
    holes: np.ndarray  # (T,) bool


def triangulate(points: np.ndarray, openings: list[list[int]]) -> Triangulation:
    """Delaunay triangles of a (frontal) landmark set; a triangle whose three corners all lie on one
    opening's ring (inner lips, an eye's lid line) fills that opening and is marked as a hole."""
    tri = Delaunay(np.asarray(points, np.float64)).simplices.astype(np.int32)
    holes = np.zeros(len(tri), bool)
    for ring in openings:
        ring_set = np.zeros(len(points), bool)
        ring_set[ring] = True
        holes |= ring_set[tri].all(axis=1)
    return Triangulation(tri, holes)


def corner_inverses(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (T, 3, 2) triangles, the inverses (T, 3, 3) of their corner matrices (rows [x y 1]) and a mask of
    usable (non-degenerate) ones, whose inverse is the identity. Written out (adjugate over determinant):
    a few array operations instead of a batched LAPACK call per triangle."""
    c = corners.astype(np.float64)
    x0, x1, x2 = c[:, 0, 0], c[:, 1, 0], c[:, 2, 0]
    y0, y1, y2 = c[:, 0, 1], c[:, 1, 1], c[:, 2, 1]
    adjugate = np.stack([
        np.stack([y1 - y2, y2 - y0, y0 - y1], axis=1),
        np.stack([x2 - x1, x0 - x2, x1 - x0], axis=1),
        np.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], axis=1),
    ], axis=1)
    det = x0 * (y1 - y2) + x1 * (y2 - y0) + x2 * (y0 - y1)  # twice the signed area
    ok = np.abs(det) > 1e-3
    inverse = np.where(ok[:, None, None], adjugate / np.where(ok, det, 1.0)[:, None, None], np.eye(3))
    return inverse, ok


def corner_affines(dst_corners: np.ndarray, src_corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle 2×3 affines mapping each (T, 3, 2) destination triangle onto its source triangle, and
    a mask of usable (non-degenerate) ones."""
    inverse, ok = corner_inverses(dst_corners)
    coeffs = inverse @ src_corners.astype(np.float64)  # (T, 3, 2): [x y 1] @ coeffs = source point
    return coeffs.transpose(0, 2, 1).astype(np.float32), ok


def triangle_affines(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle 2×3 affines mapping destination points to source points, and a mask of usable triangles."""
    return corner_affines(dst[triangles], src[triangles])


_UNIT_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)


@dataclass(frozen=True)
class DestinationTriangles:
    """A destination mesh's triangles solved once, so that affines onto any number of source point sets
    (the source's own points, its mirror image, barycentric corners) cost one matrix product each."""

    inverse: np.ndarray  # (T, 3, 3): rows [x y 1] of the corners, inverted
    ok: np.ndarray  # (T,) non-degenerate

    @classmethod
    def of(cls, dst: np.ndarray, triangles: np.ndarray) -> DestinationTriangles:
        return cls(*corner_inverses(dst[triangles]))

    def affines_to(self, src_corners: np.ndarray) -> np.ndarray:
        """(T, 2, 3) affines taking each destination triangle onto the given (T, 3, 2) source corners."""
        return (self.inverse @ src_corners.astype(np.float64)).transpose(0, 2, 1).astype(np.float32)

    def barycentric(self) -> np.ndarray:
        """(T, 2, 3) affines taking a pixel to its barycentric weights (b1, b2) of corners 1 and 2."""
        return self.affines_to(np.broadcast_to(_UNIT_CORNERS, (len(self.ok), 3, 2)))


def rasterise_ids(dst: np.ndarray, triangles: np.ndarray, usable: np.ndarray, rect: tuple[int, int, int, int],
                  order: np.ndarray | None = None) -> np.ndarray:
    """A uint16 map over ``rect`` (x, y, w, h) holding the index of the triangle covering each pixel.

    ``order``: the drawing order of triangle indices (later ones cover earlier ones where they overlap).
    """
    x, y, w, h = rect
    ids = np.full((h, w), NO_TRIANGLE, np.uint16)
    index = np.flatnonzero(usable) if order is None else np.asarray(order)[usable[np.asarray(order)]]
    pts = np.round((dst[triangles[index]] - (x, y)) * 16).astype(np.int32)  # 4 fractional bits
    fill = cv2.fillConvexPoly
    for i, corners in zip(index.tolist(), pts):  # one C fill per triangle; pixels are never touched from Python
        fill(ids, corners, i, cv2.LINE_8, 4)
    return ids


def warp_maps(ids: np.ndarray, affines: np.ndarray, rect: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense source coordinates (map_x, map_y) for every pixel of ``rect`` and the covered-pixel mask.

    Uncovered pixels take triangle 0's affine (their coordinates are finite, only masked out).
    """
    x, y, w, h = rect
    count = len(affines)
    covered = ids != NO_TRIANGLE
    safe = np.minimum(ids, count)  # NO_TRIANGLE -> the extra last row, a copy of triangle 0
    table = np.concatenate([affines.reshape(count, 6), affines[:1].reshape(1, 6)]).T.copy()  # (6, T + 1)
    gx = np.arange(x, x + w, dtype=np.float32)[None, :]
    gy = np.arange(y, y + h, dtype=np.float32)[:, None]
    map_x = table[0][safe] * gx
    map_x += table[1][safe] * gy
    map_x += table[2][safe]
    map_y = table[3][safe] * gx
    map_y += table[4][safe] * gy
    map_y += table[5][safe]
    return map_x, map_y, covered


def bounding_rect(points: np.ndarray, shape: tuple[int, ...], margin: int = 2) -> tuple[int, int, int, int] | None:
    """The frame-clipped integer rect (x, y, w, h) around points, or None when it lies outside the frame."""
    h, w = shape[:2]
    x1 = max(int(np.floor(points[:, 0].min())) - margin, 0)
    y1 = max(int(np.floor(points[:, 1].min())) - margin, 0)
    x2 = min(int(np.ceil(points[:, 0].max())) + margin, w)
    y2 = min(int(np.ceil(points[:, 1].max())) + margin, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return x1, y1, x2 - x1, y2 - y1
