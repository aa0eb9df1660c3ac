"""2DFAN4: 68 facial landmarks from the detector's face box, whose eye, nose and mouth points refine its five.

As FaceFusion's ``detect_with_2dfan4``: the detector's box is scaled so its longer side is 195 px and
centred in a 256 px crop, the crop is turned upright by the face's angle (a multiple of 90°), passed
through 8-bit Lab and back (CLAHE on the lightness of dark crops), fed as BGR / 255; the network's 64-px
coordinates are mapped back through both warps, and the score is the heatmaps' mean peak stretched
[0, 0.9] → [0, 1]. The refined five points are used only when that score is above 0.5 (FaceFusion's
default ``face_landmarker_score``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.models.runtime import LazyModel

CROP = 256
MIN_SCORE = 0.5  # FaceFusion's default --face-landmarker-score: the 68 points' five replace the detector's above it


def box_crop_affine(box: np.ndarray) -> np.ndarray:
    """Frame → 256-px crop: the box's longer side scaled to 195 px, its centre at the crop's centre."""
    box = np.asarray(box, np.float64)
    scale = 195.0 / max(float((box[2:] - box[:2]).max()), 1.0)
    tx, ty = (CROP - (box[:2] + box[2:]) * scale) * 0.5
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def face_angle(points: np.ndarray) -> int:
    """The face's roll snapped to 0, 90, 180 or 270 degrees (ties to the smaller), from its eye line.

    FaceFusion reads the line from jaw point 0 to jaw point 16 of a 68-point estimate made from the five
    points; the eye line of the five points runs the same way across the face.
    """
    (x1, y1), (x2, y2) = np.asarray(points, np.float64)[:2]
    theta = float(np.degrees(np.arctan2(y2 - y1, x2 - x1))) % 360
    return int(min(range(0, 361, 90), key=lambda a: abs(a - theta)) % 360)


def upright_affine(angle: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The crop → turned crop rotation about the crop's centre, and the turned crop's size (FaceFusion's)."""
    m = np.asarray(cv2.getRotationMatrix2D((CROP / 2, CROP / 2), angle, 1), np.float64)
    size = np.abs(m[:, :2]) @ np.array([CROP, CROP], np.float64)
    m[:, 2] += (size - CROP) * 0.5
    return m, (int(size[0]), int(size[1]))


def optimise_contrast(bgr: np.ndarray) -> np.ndarray:
    """FaceFusion's contrast step on its BGR crop (read as RGB, as it does): CLAHE on the lightness of dark crops."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_RGB2Lab)
    if float(lab[:, :, 0].mean()) < 30:
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def five_from_68(points: np.ndarray) -> np.ndarray:
    """The template-order five points of 68 landmarks: eye centres (36–41, 42–47), nose tip 30, mouth corners 48, 54."""
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]).astype(np.float32)


def refined_five(points: np.ndarray, score: float, fallback: np.ndarray) -> np.ndarray:
    """FaceFusion's ``5/68``: the 68 landmarks' five points when their score is above 0.5, else ``fallback``."""
    return five_from_68(points) if score > MIN_SCORE else np.asarray(fallback, np.float32)


def detector_box(face: Face) -> np.ndarray:
    """The box 68-point landmarkers crop from: the detector's own, else the face's."""
    return face.detector_box if face.detector_box is not None else face.box


class Landmarker68:
    """Runs 2DFAN4 on a face's detector box (``detect``); ``refined_five`` turns its output into alignment points."""

    def __init__(self, name: str = "2dfan4", options: Any = None, models_dir: Path | None = None) -> None:
        self.model = LazyModel(name, options, models_dir, task="face_landmarker")

    def landmarks(self, frame: np.ndarray, box: np.ndarray, angle: int = 0) -> tuple[np.ndarray, float]:
        """68 points (frame pixels) and the reliability score in [0, 1] for the face in ``box`` of an RGB frame."""
        m = box_crop_affine(box)
        crop = np.ascontiguousarray(cv2.warpAffine(frame, m, (CROP, CROP))[:, :, ::-1])  # FaceFusion's frames are BGR
        turn, size = upright_affine(angle)
        crop = optimise_contrast(cv2.warpAffine(crop, turn, size))
        x = (crop.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        session = self.model.session
        points, heatmaps = session.run(None, {"input": x})[:2]
        pts = np.asarray(points, np.float64)[0, :, :2] / 64.0 * CROP
        for back in (cv2.invertAffineTransform(turn), cv2.invertAffineTransform(m)):
            pts = pts @ back[:, :2].T + back[:, 2]
        score = float(np.interp(float(np.asarray(heatmaps).max(axis=(2, 3)).mean()), [0.0, 0.9], [0.0, 1.0]))
        return pts.astype(np.float32), score

    def detect(self, frame: np.ndarray, face: Face, points: np.ndarray) -> tuple[np.ndarray, float]:
        """68 points and score of ``face``: from its detector box, turned upright by the roll of ``points``."""
        return self.landmarks(frame, detector_box(face), face_angle(points))
