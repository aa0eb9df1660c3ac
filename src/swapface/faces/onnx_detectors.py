"""SCRFD, RetinaFace (InsightFace layout), YOLOFace and YuNet face detectors through ONNX Runtime.

Each frame is letterboxed into the model's square input (shrunk to fit, never enlarged, padded bottom/right), decoded
per stride from anchor centres, filtered by score, de-duplicated by NMS, and mapped back to frame
pixels. Keypoints come out in template order (image-left eye first), as ``Face`` requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapface.errors import InputError
from swapface.faces.face import Face
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype
from swapface.models.templates import to_tensor

STRIDES = (8, 16, 32)


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame on a size×size canvas (top-left, zero padding), shrunk to fit if larger — never enlarged,
    as FaceFusion's ``restrict_frame`` — and the (x, y) ratios that map canvas pixels back to frame pixels."""
    h, w = frame.shape[:2]
    small = frame
    if h > size or w > size:
        scale = min(size / h, size / w)
        small = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))))
    nh, nw = small.shape[:2]
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:nh, :nw] = small
    return canvas, np.array([w / nw, h / nh], np.float32)


def anchor_centres(size: int, stride: int, per_cell: int) -> np.ndarray:
    """(x, y) · stride of each anchor, row-major over the feature map, ``per_cell`` anchors per cell."""
    cells = size // stride
    ys, xs = np.mgrid[0:cells, 0:cells]
    centres = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, per_cell, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression."""
    if len(boxes) == 0:
        return []
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
    keep = cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, iou)
    return [int(i) for i in np.asarray(keep).reshape(-1)]


def decode_insightface(outputs: list[np.ndarray], size: int, threshold: float) -> tuple[np.ndarray, ...]:
    """SCRFD/RetinaFace heads (scores×3, box distances×3, keypoint offsets×3) → boxes, scores, keypoints."""
    boxes, scores, kps = [], [], []
    for i, stride in enumerate(STRIDES):
        s = outputs[i].reshape(-1)
        d = outputs[i + 3].reshape(-1, 4) * stride
        k: np.ndarray = outputs[i + 6].reshape(-1, 10) * stride
        centres = anchor_centres(size, stride, len(s) // (size // stride) ** 2)
        keep = s >= threshold
        c = centres[keep]
        d, k = d[keep], k[keep].reshape(-1, 5, 2)
        boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], 1))
        scores.append(s[keep])
        kps.append(k + c[:, None, :])
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)


def decode_yunet(outputs: list[np.ndarray], size: int, threshold: float) -> tuple[np.ndarray, ...]:
    """YuNet heads (cls×3, obj×3, bbox×3, kps×3; one anchor per cell) → boxes, scores, keypoints."""
    boxes, scores, kps = [], [], []
    for i, stride in enumerate(STRIDES):
        cls = np.clip(outputs[i].reshape(-1), 0, 1)
        obj = np.clip(outputs[i + 3].reshape(-1), 0, 1)
        b = outputs[i + 6].reshape(-1, 4)
        k = outputs[i + 9].reshape(-1, 10)
        centres = anchor_centres(size, stride, 1)
        s = cls * obj
        keep = s >= threshold
        c, b, k = centres[keep], b[keep], k[keep].reshape(-1, 5, 2)
        centre = b[:, :2] * stride + c
        half = np.exp(b[:, 2:4]) * stride / 2
        boxes.append(np.concatenate([centre - half, centre + half], 1))
        scores.append(s[keep])
        kps.append(k * stride + c[:, None, :])
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)


def decode_yolo_face(outputs: list[np.ndarray], size: int, threshold: float) -> tuple[np.ndarray, ...]:
    """YOLOv8-face head (1×20×N: centre x, y, width, height, score, then x, y, visibility per keypoint) →
    boxes, scores, keypoints (input pixels)."""
    rows = np.asarray(outputs[0], np.float32).reshape(20, -1).T
    keep = rows[:, 4] >= threshold
    rows = rows[keep]
    centre, half = rows[:, :2], rows[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)
    kps = rows[:, 5:20].reshape(-1, 5, 3)[:, :, :2]
    return boxes, rows[:, 4], kps


_DECODERS = {"yunet": decode_yunet, "yolo_face": decode_yolo_face}

ANGLES = (0, 90, 180, 270)
#: NMS IoU by how many angles are searched (FaceFusion's ``get_nms_threshold``): rotated passes find the same
#: face with looser boxes, so more angles suppress more.
NMS_IOU_BY_ANGLES = {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1}


def rotation(angle: int, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The affine turning a frame by ``angle`` degrees about its centre into a canvas that holds all of it."""
    m = np.asarray(cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0), np.float64)
    size = np.abs(m[:, :2]) @ np.array([width, height], np.float64)
    m[:, 2] = m[:, 2] + (size - np.array([width, height], np.float64)) / 2
    return m, (round(float(size[0])), round(float(size[1])))


class OnnxDetector:
    """A face detector of the InsightFace (scrfd, retinaface), YOLOFace or YuNet family."""

    def __init__(self, name: str, options: Any = None, models_dir: Path | None = None, iou: float | None = None) -> None:
        self.name = name
        self.model = LazyModel(name, options, models_dir, task="face_detector")
        self.score = float(getattr(options, "face_detector_score", 0.5))
        angles = tuple(dict.fromkeys(int(a) for a in getattr(options, "face_detector_angles", (0,)) or (0,)))
        if any(a not in ANGLES for a in angles):
            raise InputError(f"face detector angles must be among {', '.join(map(str, ANGLES))}")
        self.angles = angles
        self.iou = NMS_IOU_BY_ANGLES[len(angles)] if iou is None else iou
        self._decode = _DECODERS.get(name, decode_insightface)

    @property
    def input_side(self) -> int:
        """The model's square input side: a frame larger than this is shrunk before the network sees it."""
        return int(self.model.contract.size)

    def _ordered_outputs(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.name != "yunet":
            return outputs
        names = [o.name for o in self.model.session.get_outputs()]
        wanted = [f"{h}_{s}" for h in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        if set(wanted) <= set(names):  # published YuNet names its heads; otherwise trust the order
            return [outputs[names.index(w)] for w in wanted]
        return outputs

    def _detect_upright(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = self.model.contract.size
        session = self.model.session
        canvas, ratio = letterbox(frame, size)
        x = to_tensor(canvas[None], self.model.contract, input_dtype(session))
        outputs = self._ordered_outputs(session.run(None, {session.get_inputs()[0].name: x}))
        boxes, scores, kps = self._decode([np.asarray(o, np.float32) for o in outputs], size, self.score)
        return boxes * np.tile(ratio, 2), scores, kps * ratio

    def _detect_turned(self, frame: np.ndarray, angle: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detection on the frame turned by ``angle``, mapped back (boxes: the hull of their turned corners)."""
        h, w = frame.shape[:2]
        m, size = rotation(angle, w, h)
        boxes, scores, kps = self._detect_upright(cv2.warpAffine(frame, m, size))
        back = cv2.invertAffineTransform(m)
        corners = boxes[:, [[0, 1], [2, 1], [2, 3], [0, 3]]]  # N×4×2
        corners = corners @ back[:, :2].T + back[:, 2]
        boxes = np.concatenate([corners.min(1), corners.max(1)], 1)
        return boxes, scores, kps @ back[:, :2].T + back[:, 2]

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in an RGB frame (at each of the detector angles): boxes, scores and five keypoints, best first."""
        found = [self._detect_upright(frame) if a == 0 else self._detect_turned(frame, a) for a in self.angles]
        boxes = np.concatenate([f[0] for f in found]).reshape(-1, 4)
        scores = np.concatenate([f[1] for f in found])
        kps = np.concatenate([f[2] for f in found]).reshape(-1, 5, 2)
        faces = []
        for i in nms(boxes, scores, self.iou):
            faces.append(Face(box=boxes[i].astype(np.float32), score=float(scores[i]), keypoints=kps[i].astype(np.float32)))
        return sorted(faces, key=lambda f: -f.score)


def build(name: str, options: Any) -> OnnxDetector:
    """Factory for the detector registry: scrfd, retinaface, yolo_face or yunet."""
    return OnnxDetector(name, options)
