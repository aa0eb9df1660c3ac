"""Processor ``face_debugger``: draws what the engine saw — boxes, keypoints, mesh, the blend mask's outline and
the openings kept from the target — and the detector's candidates that were rejected, in red with the reason,
so a user can see why a swap looks wrong or why a face was not swapped."""

from __future__ import annotations

import cv2
import numpy as np

from swapface.faces.analyser import FaceAnalyser
from swapface.faces.face import Face
from swapface.faces.mediapipe import LEFT_EYE_RING, RIGHT_EYE_RING
from swapface.faces.verification import Rejection
from swapface.geometry.face_topology import INNER_LIPS
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity

BOX = (0, 255, 0)
KEYPOINT = (255, 0, 0)
MESH = (0, 200, 255)
MASK = (255, 220, 0)
OPENING = (255, 0, 255)
REJECTED = (255, 40, 40)


class FaceDebugger:
    """Annotates each target face; leaves the rest of the frame as it is."""

    name = "face_debugger"
    needs_source = False
    whole_frame = False

    def __init__(self, options: SwapOptions) -> None:
        self.options = options
        self._analyser: FaceAnalyser | None = None

    def rejected(self, frame: np.ndarray) -> list[Rejection]:
        """The frame's rejected detector candidates (a still analysis of its own: the debugger may be slow)."""
        if self._analyser is None:
            from swapface.faces.mediapipe import MeshLandmarker
            from swapface.faces.registry import build_detector

            detector = build_detector(self.options.face_detector_model, self.options)
            self._analyser = FaceAnalyser(detector, MeshLandmarker(), None)
        return self._analyser.analyse_still_detailed(frame).rejected

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        out = np.ascontiguousarray(frame.copy())
        thickness = max(1, round(max(frame.shape[:2]) / 500))
        for rejection in self.rejected(frame):
            x1, y1, x2, y2 = (round(v) for v in rejection.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), REJECTED, thickness)
            label = f"{rejection.score:.2f} {rejection.reason}"
            cv2.putText(out, label, (x1, min(y2 + 12 * thickness, frame.shape[0] - 2)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 * thickness, REJECTED, thickness)
        for face in faces:
            x1, y1, x2, y2 = (int(round(v)) for v in face.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), BOX, thickness)
            if face.landmarks is not None:
                pts = face.landmarks
                for x, y in pts.astype(np.int32):
                    cv2.circle(out, (int(x), int(y)), 0, MESH, thickness)
                hull = cv2.convexHull(pts.astype(np.int32))
                cv2.polylines(out, [hull], True, MASK, thickness)
                for ring in (INNER_LIPS, RIGHT_EYE_RING, LEFT_EYE_RING):
                    cv2.polylines(out, [pts[ring].astype(np.int32)], True, OPENING, thickness)
            for x, y in face.keypoints.astype(np.int32):
                cv2.circle(out, (int(x), int(y)), 2 * thickness, KEYPOINT, -1)
            label = f"{face.score:.2f}" + (f" #{face.track_id}" if face.track_id is not None else "")
            if face.landmark_confidence is not None:
                label += f" conf {face.landmark_confidence:.2f}"
            cv2.putText(out, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, BOX, thickness)
        return out


def build(options: SwapOptions) -> FaceDebugger:
    """Registry factory."""
    return FaceDebugger(options)
