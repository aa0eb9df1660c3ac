"""Regenerate ``swapface/data/face_topology.npz``: the mesh's mirror map, canonical frontal shape and triangles.

The 468-point mesh has a fixed vertex order, so its left-right mirror map and a frontal layout are facts
about the model, computed once here from the built-in landmarker run on scikit-image's astronaut:

- mirror: the vertex permutation that swaps the face's sides, found by reflecting the 3D mesh across its
  best symmetry plane and solving the assignment (an involution, midline vertices map to themselves);
- canonical: the mesh rotated to face the camera, symmetrised (averaged with its mirror image) and scaled
  to an inter-ocular distance of 1, x to the image right, y down, z away from the camera;
- triangles: Delaunay triangles of the canonical layout, one topology for every face.

Run: ``python scripts/make_face_topology.py`` (needs scikit-image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from scipy.optimize import linear_sum_assignment
from scipy.spatial import Delaunay

from swapface.faces.analyser import FaceAnalyser
from swapface.faces.mediapipe import LEFT_EYE_RING, RIGHT_EYE_RING
from swapface.options import SwapOptions

SIDE_PAIRS = [(33, 263), (133, 362), (61, 291), (234, 454), (70, 300), (105, 334)]
OUT = Path(__file__).resolve().parents[1] / "src" / "swapface" / "data" / "face_topology.npz"


def mirror_map(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The side-swapping vertex permutation, the symmetry plane's normal and a point on it."""
    normal = sum(points[b] - points[a] for a, b in SIDE_PAIRS)
    normal /= np.linalg.norm(normal)
    centre = np.mean([(points[a] + points[b]) / 2 for a, b in SIDE_PAIRS], axis=0)
    for _ in range(5):
        reflected = points - 2 * ((points - centre) @ normal)[:, None] * normal
        cost = np.linalg.norm(reflected[:, None, :] - points[None, :, :], axis=2)
        _, mirror = linear_sum_assignment(cost)
        diff = points[mirror] - points
        moved = np.linalg.norm(diff, axis=1) > 1.0
        axes = diff[moved] / np.linalg.norm(diff[moved], axis=1)[:, None]
        axes *= np.sign(axes @ (points[263] - points[33]))[:, None]
        normal = axes.mean(0) / np.linalg.norm(axes.mean(0))
        centre = ((points + points[mirror]) / 2).mean(0)
    assert (mirror[mirror] == np.arange(len(points))).all(), "mirror map is not an involution"
    return mirror.astype(np.int32), normal, centre


def main() -> None:
    face = FaceAnalyser.from_options(SwapOptions()).analyse_still(skimage.data.astronaut())[0]
    assert face.landmarks is not None and face.depth is not None
    points = np.c_[face.landmarks, face.depth].astype(np.float64)
    mirror, x_axis, centre = mirror_map(points)
    down = points[152] - points[10]
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    frontal = (points - centre) @ np.stack([x_axis, y_axis, z_axis]).T
    symmetric = (frontal + frontal[mirror] * (-1, 1, 1)) / 2
    iod = np.linalg.norm(symmetric[LEFT_EYE_RING].mean(0) - symmetric[RIGHT_EYE_RING].mean(0))
    canonical = (symmetric / iod).astype(np.float32)
    triangles = Delaunay(canonical[:, :2].astype(np.float64)).simplices.astype(np.int32)
    np.savez_compressed(OUT, mirror=mirror, canonical=canonical, triangles=triangles)
    print(f"wrote {OUT}: {len(triangles)} triangles, {int((mirror == np.arange(len(mirror))).sum())} midline vertices")


if __name__ == "__main__":
    main()
