"""The replaceable stages of face analysis, as Protocols: any object with these methods plugs in."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from swapface.faces.face import Face


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces: boxes, scores and five keypoints (no mesh, no embedding yet)."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


@runtime_checkable
class FaceLandmarker(Protocol):
    """Adds the dense 468-point mesh (and refined keypoints) to detected faces; drops non-faces."""

    def landmark(self, frame: np.ndarray, faces: list[Face]) -> list[Face]: ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Adds an L2-normalised identity embedding to each face.

    ``match_distance`` is the Euclidean distance between normalised embeddings under which two
    faces are taken for the same person.
    """

    name: str
    match_distance: float

    def embed(self, frame: np.ndarray, faces: list[Face]) -> list[Face]: ...
