"""The 468-point face mesh as a fixed topology: triangles, their regions, the left-right mirror map.

One triangulation serves every face (computed on the canonical frontal layout, see
``scripts/make_face_topology.py``), so a triangle means the same patch of skin on the source and the
target, and per-vertex quantities (shading, visibility) correspond by index. Regions are decided on the
canonical layout once: which triangles are eye or mouth openings, lips, brows, nose, the outer ring
along the silhouette (never copied: it carries background and hair), and which vertices are plain skin
for colour and lighting estimates (forehead, nose, upper cheeks — never brows, eyes, lips or the beard
zone below the nostrils).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from importlib.resources import files

import cv2
import numpy as np

from swapface.faces.mediapipe import LEFT_EYE_RING, RIGHT_EYE_RING

INNER_LIPS = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
OUTER_LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]  # subject's right (image left in a frontal face)
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]

#: Region names shared with ``--face-mask-regions`` (subject's left/right, as the face parser's labels).
REGIONS = ("skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "nose", "mouth", "upper-lip", "lower-lip")
HAIRLINE_Y = -1.05  # canonical y (inter-ocular units) above which mesh vertices reach into the hairline


@dataclass(frozen=True, eq=False)
class FaceTopology:
    """Triangles (T×3, counter-clockwise on the canonical layout) and what each triangle and vertex is.

    Compared and hashed by identity (there is one, read once), so what is derived from it can be cached."""

    canonical: np.ndarray  # (468, 3) frontal shape, inter-ocular distance 1, y down, z away from the camera
    mirror: np.ndarray  # (468,) vertex on the other side of the face
    triangles: np.ndarray  # (T, 3) int32
    region: np.ndarray  # (T,) index into REGIONS
    outer: np.ndarray  # (T,) bool: touches the silhouette or the hairline
    hairline: np.ndarray  # (T,) bool: reaches into the hairline: never textured from the source
    upper: np.ndarray  # (T,) bool: above the mouth corners, where head hair and backdrop reach into a face
    opening: np.ndarray  # (T,) bool: inside an eye's lid line or the inner lips (the mouth's stays the target's)
    skin_vertices: np.ndarray  # (V,) int32: plain skin for colour and lighting statistics

    def triangles_in(self, regions: tuple[str, ...]) -> np.ndarray:
        """Mask of triangles whose region is one of ``regions`` (read-only: it is worked out once per choice)."""
        return _triangles_in(self, tuple(regions))


def per_topology(table: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A table derived from a topology (and hashable choices), worked out once and kept read-only: it is shared."""

    @wraps(table)
    @lru_cache(maxsize=64)
    def cached(*args: object) -> np.ndarray:
        out = table(*args)
        out.flags.writeable = False
        return out

    return cached


@per_topology
def _triangles_in(topology: FaceTopology, regions: tuple[str, ...]) -> np.ndarray:
    return np.isin(topology.region, [REGIONS.index(r) for r in regions if r in REGIONS])


def _inside(points: np.ndarray, polygon: np.ndarray, grow: float = 1.0) -> np.ndarray:
    """Which 2D points fall inside ``polygon`` scaled by ``grow`` about its centre."""
    centre = polygon.mean(0)
    poly = ((polygon - centre) * grow + centre).astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in points])


def _regions(canonical: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    xy = canonical[:, :2]
    centroids = xy[triangles].mean(1)
    region = np.full(len(triangles), REGIONS.index("skin"), np.int32)
    mouth_y = float(xy[[13, 14]].mean(0)[1])
    nose = (np.abs(centroids[:, 0]) < 0.3) & (centroids[:, 1] > float(xy[168, 1])) & (centroids[:, 1] < float(xy[2, 1]) + 0.04)
    region[nose] = REGIONS.index("nose")
    lips = _inside(centroids, xy[OUTER_LIPS])
    region[lips & (centroids[:, 1] < mouth_y)] = REGIONS.index("upper-lip")
    region[lips & (centroids[:, 1] >= mouth_y)] = REGIONS.index("lower-lip")
    region[_inside(centroids, xy[INNER_LIPS])] = REGIONS.index("mouth")
    region[_inside(centroids, xy[RIGHT_BROW], 1.35)] = REGIONS.index("right-eyebrow")
    region[_inside(centroids, xy[LEFT_BROW], 1.35)] = REGIONS.index("left-eyebrow")
    region[_inside(centroids, xy[RIGHT_EYE_RING], 1.5)] = REGIONS.index("right-eye")
    region[_inside(centroids, xy[LEFT_EYE_RING], 1.5)] = REGIONS.index("left-eye")
    return region


def _outer(canonical: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles touching the mesh's boundary (the silhouette) or reaching into the hairline."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = np.zeros(len(canonical), bool)
    boundary[unique[counts == 1].ravel()] = True
    boundary[FACE_OVAL] = True
    boundary |= canonical[:, 1] < HAIRLINE_Y
    return boundary[triangles].any(axis=1)


def _skin_vertices(canonical: np.ndarray, region: np.ndarray, triangles: np.ndarray, outer: np.ndarray) -> np.ndarray:
    x, y = canonical[:, 0], canonical[:, 1]
    eye_y = float(canonical[RIGHT_EYE_RING + LEFT_EYE_RING, 1].mean())
    brow_top = float(canonical[RIGHT_BROW + LEFT_BROW, 1].min())
    nostrils = float(canonical[2, 1])
    forehead = (y < brow_top - 0.04) & (y >= HAIRLINE_Y) & (np.abs(x) < 0.7)
    nose = (np.abs(x) < 0.2) & (y > eye_y + 0.15) & (y < nostrils - 0.12)
    cheeks = (np.abs(x) > 0.35) & (np.abs(x) < 0.9) & (y > eye_y + 0.3) & (y < nostrils + 0.1)
    plain = np.zeros(len(canonical), bool)
    skin_triangles = (region == REGIONS.index("skin")) | (region == REGIONS.index("nose"))
    plain[triangles[skin_triangles & ~outer].ravel()] = True
    plain[triangles[~skin_triangles].ravel()] = False  # a vertex shared with a brow, eye or lip is not plain skin
    return np.flatnonzero(plain & (forehead | nose | cheeks)).astype(np.int32)


@lru_cache(maxsize=1)
def face_topology() -> FaceTopology:
    """The mesh topology shipped with the package (read once; immutable)."""
    with files("swapface").joinpath("data", "face_topology.npz").open("rb") as fh:
        data = np.load(fh)
        canonical, mirror, triangles = data["canonical"], data["mirror"], data["triangles"].astype(np.int32)
    xy = canonical[:, :2].astype(np.float64)
    a, b, c = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    triangles = np.where((signed < 0)[:, None], triangles[:, [0, 2, 1]], triangles)
    region = _regions(canonical, triangles)
    outer = _outer(canonical, triangles)
    hairline = (canonical[:, 1] < HAIRLINE_Y)[triangles].any(axis=1)
    upper = xy[triangles].mean(1)[:, 1] < float(xy[[61, 291], 1].mean())
    centroids = xy[triangles].mean(1)
    opening = _inside(centroids, xy[INNER_LIPS]) | _inside(centroids, xy[RIGHT_EYE_RING]) | _inside(centroids, xy[LEFT_EYE_RING])
    return FaceTopology(canonical, mirror.astype(np.int32), triangles, region, outer, hairline, upper, opening,
                        _skin_vertices(canonical, region, triangles, outer))
