"""2DFAN4: 68 facial landmarks from a face box, whose eye, nose and mouth points refine the detector's five.

As FaceFusion: the box is scaled so its longer side is 195 px and centred in a 256 px crop, the crop is
fed as BGR / 255 (dark crops get CLAHE on their lightness first), the network's 64-px heatmap coordinates
are mapped back to the frame, and the refined five points are used only when the heatmaps' mean peak says
the landmarks are reliable (score ≥ 0.5 after FaceFusion's [0, 0.9] → [0, 1] stretch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.models.runtime import LazyModel

CROP = 256
MIN_SCORE = 0.5


def box_crop_affine(box: np.ndarray) -> np.ndarray:
    """Frame → 256-px crop: the box's longer side scaled to 195 px, its centre at the crop's centre."""
    box = np.asarray(box, np.float64)
    scale = 195.0 / max(float((box[2:] - box[:2]).max()), 1.0)
    tx, ty = (CROP - (box[:2] + box[2:]) * scale) * 0.5
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def optimise_contrast(bgr: np.ndarray) -> np.ndarray:
    """FaceFusion's contrast step, on the BGR crop as it does it: CLAHE on the lightness of dark crops."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_RGB2Lab)
    if float(lab[:, :, 0].mean()) < 30:
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def five_from_68(points: np.ndarray) -> np.ndarray:
    """The template-order five points of 68 landmarks: eye centres (36–41, 42–47), nose tip 30, mouth corners 48, 54."""
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]).astype(np.float32)


class Landmarker68:
    """Runs 2DFAN4 on a face's box; ``refine`` gives the five points neural models align on."""

    def __init__(self, name: str = "2dfan4", options: Any = None, models_dir: Path | None = None) -> None:
        self.model = LazyModel(name, options, models_dir, task="face_landmarker")

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        """68 points (frame pixels) and the reliability score in [0, 1] for the face in ``box`` of an RGB frame."""
        m = box_crop_affine(box)
        crop = cv2.warpAffine(frame, m, (CROP, CROP))
        bgr = optimise_contrast(np.ascontiguousarray(crop[:, :, ::-1]))
        x = (bgr.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        session = self.model.session
        points, heatmaps = session.run(None, {"input": x})[:2]
        pts = np.asarray(points, np.float64)[0, :, :2] / 64.0 * CROP
        back = cv2.invertAffineTransform(m)
        frame_pts = pts @ back[:, :2].T + back[:, 2]
        score = float(np.interp(float(np.asarray(heatmaps).max(axis=(2, 3)).mean()), [0.0, 0.9], [0.0, 1.0]))
        return frame_pts.astype(np.float32), score

    def refine(self, frame: np.ndarray, face: Face, fallback: np.ndarray) -> np.ndarray:
        """The 68-point landmarks' five points when reliable, else ``fallback`` (the detector's)."""
        points, score = self.landmarks(frame, face.box)
        return five_from_68(points) if score >= MIN_SCORE else np.asarray(fallback, np.float32)
