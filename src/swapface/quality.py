"""How real a swapped image looks, measured against its target with an independent judge.

The scorer is dlib (HOG face detector, 68-point shape predictor, 128-d face recognition ResNet), not the
MediaPipe mesh the swapper itself uses, so the judge is not the contestant. Metrics, each a pure function:

- seam: gradient of (output − target) along the outer edge of the changed region (narrow inlets closed)
  ÷ the target's own gradient there (> 1.0 is where a hard paste starts);
- cheek ΔE: CIE76 distance between the mean CIELAB colours of output and target in two cheek discs;
- landmark NME: dlib points of output vs target ÷ the target's inter-ocular distance (mouth and all);
- sharpness ratio: variance of the Laplacian inside the face, output ÷ target (< 1 = softer);
- identity: dlib descriptor distances and top-1 retrieval against a labelled gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.geometry.color import fill_holes

MOUTH = tuple(range(48, 68))
LEFT_EYE = tuple(range(36, 42))
RIGHT_EYE = tuple(range(42, 48))
#: dlib's published rule: two descriptors of one person lie closer than this (raw, not normalised).
DLIB_MATCH_DISTANCE = 0.6
#: Whole photos are searched at most this many pixels on their longer side; faces are scored this wide.
DETECT_SIDE = 800
FACE_SIDE = 300.0


# -- dlib scorer ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredFace:
    """One face as dlib sees it: box (x1, y1, x2, y2), 68 landmarks (x, y) and a raw 128-d descriptor."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    descriptor: np.ndarray

    @property
    def area(self) -> int:
        """Box area in pixels."""
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


class DlibScorer:
    """Finds faces, their 68 landmarks and descriptors with dlib's own models (loaded on first use)."""

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._models: tuple | None = None

    def _load(self) -> tuple:
        if self._models is None:
            import dlib

            from swapface.models.builtin import dlib_model_path

            self._models = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks"))),
                dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1"))),
            )
        return self._models

    def faces(self, image: np.ndarray, near: tuple[int, int, int, int] | None = None) -> list[ScoredFace]:
        """Every face dlib finds in an RGB image, largest first; ``near`` restricts the search to around a box."""
        found = [self.face_at(image, box) for box in self.boxes(image, near)]
        return sorted(found, key=lambda f: f.area, reverse=True)

    def found_near(self, image: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """Whether dlib detects a face overlapping ``box`` (IoU > 0.3)."""
        return any(box_iou(b, box) > 0.3 for b in self.boxes(image, near=box))

    def boxes(self, image: np.ndarray, near: tuple[int, int, int, int] | None = None) -> list[tuple[int, int, int, int]]:
        """Face boxes (x1, y1, x2, y2) dlib's HOG detector finds, in the whole image or around ``near``."""
        detector = self._load()[0]
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        if near is None:
            ox, oy = 0, 0
            scale = min(1.0, DETECT_SIDE / max(image.shape[:2]))
            crop = image
        else:  # around a known face, at a size where HOG finds it quickly (face ~ 160 px wide)
            ox, oy, x2, y2 = grow_box(near, image.shape, 0.6)
            crop = image[oy:y2, ox:x2]
            scale = min(2.0, 160.0 / max(1.0, float(near[2] - near[0])))
        small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else crop
        small = np.ascontiguousarray(small)
        rects = list(detector(small, 0)) or list(detector(small, self.upsample))
        return [(round(r.left() / scale) + ox, round(r.top() / scale) + oy,
                 round(r.right() / scale) + ox, round(r.bottom() / scale) + oy) for r in rects]

    def face_at(self, image: np.ndarray, box: tuple[int, int, int, int]) -> ScoredFace:
        """Landmarks and descriptor of the face in ``box`` (no detection: the same box gives comparable points).

        Large faces are scored on a copy scaled to ``FACE_SIDE`` px wide (dlib's models gain nothing above it).
        """
        import dlib

        _, predictor, net = self._load()
        box = tuple(int(v) for v in box)  # type: ignore[assignment]
        ox, oy, x2, y2 = grow_box(box, image.shape, 0.5)
        scale = min(1.0, FACE_SIDE / max(1.0, float(box[2] - box[0])))
        crop = image[oy:y2, ox:x2, :3]
        if scale != 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        rect = dlib.rectangle(*(round(v) for v in ((box[0] - ox) * scale, (box[1] - oy) * scale,
                                                   (box[2] - ox) * scale, (box[3] - oy) * scale)))
        shape = predictor(crop, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32) / scale + np.array([ox, oy], np.float32)
        descriptor = np.asarray(net.compute_face_descriptor(crop, shape), np.float32)
        return ScoredFace(box, points, descriptor)

    def main_face(self, image: np.ndarray, near: tuple[int, int, int, int] | None = None) -> ScoredFace | None:
        """The face best matching ``near`` (largest overlap), or the largest face when ``near`` is None."""
        boxes = self.boxes(image, near)
        if near is not None:
            boxes = [b for b in boxes if box_iou(b, near) > 0.3]
            boxes.sort(key=lambda b: box_iou(b, near), reverse=True)
        else:
            boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return self.face_at(image, boxes[0]) if boxes else None


def grow_box(box: Sequence[float], shape: tuple[int, ...], grow: float) -> tuple[int, int, int, int]:
    """A box grown by ``grow`` of its size on each side, clipped to the image, as integer pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * grow, (y2 - y1) * grow
    h, w = shape[:2]
    return max(0, int(x1 - dx)), max(0, int(y1 - dy)), min(w, int(np.ceil(x2 + dx))), min(h, int(np.ceil(y2 + dy)))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# -- geometry of the 68 points -------------------------------------------------------------------------
def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left (36–41) and image-right (42–47) eyes."""
    pts = np.asarray(landmarks, np.float64).reshape(68, 2)
    return pts[list(LEFT_EYE)].mean(axis=0), pts[list(RIGHT_EYE)].mean(axis=0)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, the unit of every landmark error here."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def landmark_nme(output_points: np.ndarray, target_points: np.ndarray, indices: Sequence[int] | None = None) -> float:
    """Mean point-to-point distance ÷ the target's inter-ocular distance (0 = same points; 0.1 = a tenth of it)."""
    out = np.asarray(output_points, np.float64).reshape(68, 2)
    ref = np.asarray(target_points, np.float64).reshape(68, 2)
    chosen = list(indices) if indices is not None else list(range(68))
    return float(np.linalg.norm(out[chosen] - ref[chosen], axis=1).mean() / max(interocular(ref), 1e-6))


def cheek_discs(landmarks: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Two cheek discs (centre, radius): between jaw and nostril (points 2/31 and 14/35), lifted toward the eye."""
    pts = np.asarray(landmarks, np.float64).reshape(68, 2)
    left_eye, right_eye = eye_centres(pts)
    radius = 0.15 * interocular(pts)
    discs = []
    for jaw, nose, eye in ((2, 31, left_eye), (14, 35, right_eye)):
        centre = 0.5 * (pts[jaw] + pts[nose])
        centre = centre + 0.3 * (eye - centre)
        discs.append((centre, radius))
    return discs


def disc_mask(shape: tuple[int, ...], centre: np.ndarray, radius: float) -> np.ndarray:
    """A boolean disc of the image's size."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def face_hull_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """The convex hull of the 68 points as a boolean mask."""
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(landmarks).reshape(-1, 2)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


# -- colour ----------------------------------------------------------------------------------------------
def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """Float CIELAB (L 0..100, a/b signed) of an 8-bit RGB image, D65 sRGB as in the CIE definition."""
    return cv2.cvtColor(np.asarray(image[..., :3], np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def cheek_delta_e(output: np.ndarray, target: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean over the two cheek discs (placed from the target's points) of CIE76 ΔE between mean Lab colours."""
    h, w = target.shape[:2]
    values = []
    for centre, radius in cheek_discs(landmarks):
        x1, y1 = max(0, int(centre[0] - radius) - 1), max(0, int(centre[1] - radius) - 1)
        x2, y2 = min(w, int(np.ceil(centre[0] + radius)) + 2), min(h, int(np.ceil(centre[1] + radius)) + 2)
        if x2 <= x1 or y2 <= y1:
            continue
        inside = disc_mask((y2 - y1, x2 - x1), centre - (x1, y1), radius)
        if not inside.any():
            continue
        lab_out = rgb_to_lab(output[y1:y2, x1:x2])[inside].mean(axis=0)
        lab_tgt = rgb_to_lab(target[y1:y2, x1:x2])[inside].mean(axis=0)
        values.append(float(np.linalg.norm(lab_out - lab_tgt)))
    if not values:
        raise ValueError("the cheek discs lie outside the image")
    return float(np.mean(values))


# -- seam ----------------------------------------------------------------------------------------------
def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3], np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0  # / 8: grey levels per pixel
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def changed_region(output: np.ndarray, target: np.ndarray, threshold: float = 6.0, keep: float = 0.2,
                   notch: float = 0.1) -> np.ndarray:
    """Pixels the swap changed: |Δ| > ``threshold`` in any channel, opened and closed, the components at least
    ``keep`` × the largest one's size, with holes and notches filled.

    A notch is a narrow inlet narrower than ``notch`` × the region's size (√area): where a well-matched cheek
    differs from the target by less than the threshold between two of the source's features, the raw edge
    runs into the face along them; the region's outer edge, where a paste would show, does not."""
    diff = cv2.absdiff(np.ascontiguousarray(output[..., :3]), np.ascontiguousarray(target[..., :3])).max(axis=2)
    raw = (diff > threshold).astype(np.uint8)
    region = np.zeros(target.shape[:2], bool)
    ys, xs = np.nonzero(raw)
    if len(xs) == 0:
        return region
    margin = 8  # work on the changed part only: photos are large, faces are not
    x1, y1 = max(0, xs.min() - margin), max(0, ys.min() - margin)
    x2, y2 = min(raw.shape[1], xs.max() + margin + 1), min(raw.shape[0], ys.max() + margin + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    cleaned = cv2.morphologyEx(raw[y1:y2, x1:x2], cv2.MORPH_OPEN, kernel)
    cleaned = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    if count <= 1:
        return region
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = [i + 1 for i, a in enumerate(areas) if a >= keep * areas.max()]
    filled = fill_holes(np.isin(labels, kept)).astype(np.uint8)
    radius = int(round(0.5 * notch * np.sqrt(float(filled.sum()))))
    if radius >= 2:
        pad = radius + 1  # room for the closing to work up to the crop's edge
        padded = cv2.copyMakeBorder(filled, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        filled = fill_holes(cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc) > 0).astype(np.uint8)[pad:-pad, pad:-pad]
    region[y1:y2, x1:x2] = filled > 0
    return region


def edge_band(region: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels within ``width`` px of a region's outer boundary, on either side of it (where a step shows)."""
    region = region.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    outer = cv2.dilate(region, kernel)
    inner = cv2.erode(region, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (outer > 0) & (inner == 0)


def seam(output: np.ndarray, target: np.ndarray, changed_mask: np.ndarray | None = None,
         floor: float = 1.0) -> float | None:
    """Median |∇(output − target)| ÷ median |∇target| along the changed region's edge; None when nothing changed.

    A pasted patch has a step in the difference at its edge, so its seam is large; a blended paste fades
    to zero there. ``floor`` (grey levels per pixel) keeps a flat target from dividing by ~0.
    """
    region = changed_region(output, target) if changed_mask is None else np.asarray(changed_mask, bool)
    band = edge_band(region)
    band[[0, -1], :] = False  # the picture's own border is no seam
    band[:, [0, -1]] = False
    ys, xs = np.nonzero(band)
    if len(xs) < 8:
        return None
    x1, y1 = max(0, xs.min() - 2), max(0, ys.min() - 2)
    x2, y2 = min(band.shape[1], xs.max() + 3), min(band.shape[0], ys.max() + 3)
    grey_out, grey_tgt = _grey(output[y1:y2, x1:x2]), _grey(target[y1:y2, x1:x2])
    inside = band[y1:y2, x1:x2]
    diff_gradient = _gradient_magnitude(grey_out - grey_tgt)[inside]
    target_gradient = _gradient_magnitude(grey_tgt)[inside]
    return float(np.median(diff_gradient) / max(float(np.median(target_gradient)), floor))


# -- detail ------------------------------------------------------------------------------------------
def sharpness_ratio(output: np.ndarray, target: np.ndarray, landmarks: np.ndarray) -> float:
    """Variance of the Laplacian inside the target's face hull, output ÷ target (1 = as sharp; < 1 = softer)."""
    x1, y1, x2, y2 = grow_box(_points_box(landmarks), target.shape, 0.05)
    inside = face_hull_mask((y2 - y1, x2 - x1), np.asarray(landmarks).reshape(-1, 2) - (x1, y1))
    lap_out = cv2.Laplacian(_grey(output[y1:y2, x1:x2]), cv2.CV_32F)[inside]
    lap_tgt = cv2.Laplacian(_grey(target[y1:y2, x1:x2]), cv2.CV_32F)[inside]
    return float(lap_out.var() / max(float(lap_tgt.var()), 1e-6))


def _points_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


# -- identity ----------------------------------------------------------------------------------------
def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two raw dlib descriptors (same person < 0.6)."""
    return float(np.linalg.norm(np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()))


def nearest(query: np.ndarray, gallery: Sequence[tuple[str, np.ndarray]]) -> tuple[str, float]:
    """Top-1 retrieval: the label of the gallery descriptor closest to ``query``, and its distance."""
    if not gallery:
        raise ValueError("empty gallery")
    distances = [descriptor_distance(query, vec) for _, vec in gallery]
    best = int(np.argmin(distances))
    return gallery[best][0], distances[best]


def mean_distance(query: np.ndarray, vectors: Sequence[np.ndarray]) -> float | None:
    """Mean distance of ``query`` to several descriptors; None when there are none."""
    return float(np.mean([descriptor_distance(query, v) for v in vectors])) if vectors else None


# -- one image, all at once -------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageQuality:
    """Seam, cheek ΔE and sharpness of one output against its target, and landmark errors where dlib found the
    output's face; None where a metric cannot be measured."""

    found: bool
    seam: float | None
    cheek_delta_e: float | None
    sharpness_ratio: float | None
    mouth_nme: float | None
    nme: float | None

    def to_dict(self) -> dict[str, float | bool | None]:
        """Plain JSON-ready fields."""
        return dict(self.__dict__)


def compare(output: np.ndarray, target: np.ndarray, target_face: ScoredFace | None,
            output_face: ScoredFace | None) -> ImageQuality:
    """Every per-image metric of ``output`` against ``target``, given dlib's view of both (None: not found)."""
    if output.shape != target.shape:
        raise ValueError("output and target differ in size")
    seam_value = seam(output, target)
    if target_face is None:
        return ImageQuality(False, seam_value, None, None, None, None)
    mouth = nme = None
    if output_face is not None:
        mouth = landmark_nme(output_face.landmarks, target_face.landmarks, MOUTH)
        nme = landmark_nme(output_face.landmarks, target_face.landmarks)
    return ImageQuality(
        found=output_face is not None,
        seam=seam_value,
        cheek_delta_e=cheek_delta_e(output, target, target_face.landmarks),
        sharpness_ratio=sharpness_ratio(output, target, target_face.landmarks),
        mouth_nme=mouth,
        nme=nme,
    )


def output_face(output: np.ndarray, target_face: ScoredFace, scorer: DlibScorer) -> ScoredFace | None:
    """dlib's view of the output's face where the target's was: None unless dlib detects a face there; the
    points come from the target's box, so that detector jitter does not count as landmark error."""
    if not scorer.found_near(output, target_face.box):
        return None
    return scorer.face_at(output, target_face.box)


def image_quality(output: np.ndarray, target: np.ndarray, scorer: DlibScorer,
                  target_face: ScoredFace | None = None) -> ImageQuality:
    """Every per-image metric of ``output`` against ``target`` (largest target face, unless one is given)."""
    target_face = target_face or scorer.main_face(target)
    found = output_face(output, target_face, scorer) if target_face is not None else None
    return compare(output, target, target_face, found)
