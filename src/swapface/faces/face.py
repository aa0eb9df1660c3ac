"""The `Face` record every stage passes along: plain arrays in frame pixel coordinates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from swapface.faces.pose import HeadPose


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in one frame.

    ``keypoints`` are the five alignment points in template order: image-left eye, image-right eye,
    nose tip, image-left mouth corner, image-right mouth corner (float32, shape 5×2).
    ``landmarks`` is the dense 468-point mesh (float32, 468×2) when a landmarker ran.
    ``embedding`` is an L2-normalised identity vector when an embedder ran.
    ``depth`` is the mesh's per-landmark depth (float32, 468), in frame pixels, larger = farther from the
    camera, zero-mean per face; with ``landmarks`` it makes the 3D mesh the renderer needs.
    ``detector_keypoints`` are the five points the detector itself gave (template order), kept when a
    landmarker replaces ``keypoints`` with its own: neural models were trained on detector-aligned crops.
    ``detector_box`` is the detector's own box (x1, y1, x2, y2), kept when the mesh replaces ``box`` with its
    extent: FaceFusion crops 2DFAN4's input from the detector's box.
    ``landmark_confidence`` (0..1) says how far the mesh can be trusted: the face-presence score of the
    refined fit, lowered when the refit moved the landmarks (see ``swapface.faces.verification``).
    ``pose`` is the head's yaw, pitch and roll in degrees, read off the 3D mesh (``landmarks`` + ``depth``);
    ``triangle_facing`` how much each mesh triangle faces the camera (its visibility).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    track_id: int | None = None
    depth: np.ndarray | None = None
    detector_keypoints: np.ndarray | None = None
    detector_box: np.ndarray | None = None
    landmark_confidence: float | None = None

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], np.float32)

    @property
    def pose(self) -> HeadPose | None:
        """Yaw, pitch and roll (degrees) of the 3D mesh; None without a mesh and its depth."""
        if self.landmarks is None or self.depth is None:
            return None
        from swapface.faces.pose import head_pose

        return head_pose(self.landmarks, self.depth)

    @property
    def triangle_facing(self) -> np.ndarray | None:
        """Per triangle of the shared mesh topology (``swapface.geometry.face_topology``), the cosine between its
        normal and the direction to the camera: 1 faces the camera, ≤ 0 is turned away (hidden); None without a
        mesh and its depth. The renderer computes visibility the same way (``geometry.shading.triangle_facing``)."""
        if self.landmarks is None or self.depth is None or len(self.landmarks) != 468:
            return None
        from swapface.geometry.face_topology import face_topology
        from swapface.geometry.shading import mesh_points, triangle_facing

        return triangle_facing(mesh_points(self.landmarks, self.depth), face_topology().triangles)

    @property
    def interocular(self) -> float:
        """Distance between the eye centres, the natural unit for landmark errors."""
        return float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.0f}" for v in self.box)
        parts = [f"box=[{box}]", f"score={self.score:.2f}"]
        if self.landmarks is not None:
            parts.append(f"landmarks={len(self.landmarks)}")
        if self.embedding is not None:
            parts.append(f"embedding={len(self.embedding)}")
        if self.landmark_confidence is not None:
            parts.append(f"confidence={self.landmark_confidence:.2f}")
        if self.track_id is not None:
            parts.append(f"track_id={self.track_id}")
        return f"Face({', '.join(parts)})"

    def with_(self, **changes: object) -> Face:
        """A copy with some fields changed (faces are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two L2-normalised embeddings (0 = same, 2 = opposite)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))
