"""The built-in swapper: the source face warped onto the target's 468-point mesh, colour-matched and feathered.

The target keeps its pose and expression (the mesh is the target's), its open mouth's interior and its
eyes (so gaze and teeth stay the target's; the source's teeth are never drawn); the source gives the skin,
features and shape of the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.faces.mediapipe import LEFT_EYE_RING, MOUTH_CENTRE, RIGHT_EYE_RING
from swapface.geometry.color import feather, lab_stats, match_lab
from swapface.geometry.eyes import opening_mask
from swapface.geometry.face_topology import INNER_LIPS, OUTER_LIPS
from swapface.geometry.mesh_warp import (
    Triangulation,
    bounding_rect,
    rasterise_ids,
    triangle_affines,
    triangulate,
    warp_maps,
)
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity

# The mesh's upper rim runs into the hairline: triangles touching it would carry the source's hair.
# Two rows down from the rim: fringes often reach the brows, and hair must stay the target's.
FOREHEAD_RIM = [10, 338, 297, 332, 284, 251, 389, 21, 54, 103, 67, 109, 162,
                151, 108, 69, 104, 68, 71, 337, 299, 333, 298, 301, 9]
OPENINGS = [INNER_LIPS, RIGHT_EYE_RING, LEFT_EYE_RING]
COLOUR_SMOOTHING = 0.35  # share of a new frame's colour statistics in a track's running estimate
TEETH_LIGHTER = 20.0  # OpenCV CIELAB lightness (0..255) by which teeth are lighter than the lips' median
TEETH_CHROMA = (0.75, 18.0)  # teeth are nearly colourless: under this share of the lips' median chroma, and this
TEETH_REACH = 0.06  # mouth widths from the inner lip line within which teeth are looked for
TEETH_MIN_AREA = 0.01  # share of the lip area under which a light, pale speck is a highlight, not a tooth


def teeth_mask(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """uint8 map over a source photo: 1 on the teeth a smile shows inside its outer lip line (lighter than the
    lips and nearly colourless, in patches of some size: not a lip's gloss or the skin at its edge), grown by a
    pixel. The mesh's inner lip line does not hug the teeth, so the triangles between the lip lines carry some
    of them: warped into an open target mouth they show as "fangs"."""
    pts = np.asarray(points, np.float32)[:, :2]
    lips = opening_mask(image.shape, [pts[OUTER_LIPS]]) > 0
    if lips.sum() < 16:
        return np.zeros(image.shape[:2], np.uint8)
    # teeth show between the lips: near the inner lip line, not at the lips' outer edge (skin) or on their body
    reach = max(int(round(TEETH_REACH * float(np.ptp(pts[OUTER_LIPS, 0])))), 1)
    near = cv2.dilate(opening_mask(image.shape, [pts[INNER_LIPS]]), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    ys, xs = np.nonzero(lips)
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    lab = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = lips[y1:y2, x1:x2]
    lightness, chroma = lab[..., 0], np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    pale = min(TEETH_CHROMA[0] * float(np.median(chroma[inside])), TEETH_CHROMA[1])
    teeth = (inside & (near[y1:y2, x1:x2] > 0) & (lightness > np.median(lightness[inside]) + TEETH_LIGHTER)
             & (chroma < pale)).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(teeth, connectivity=8)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= TEETH_MIN_AREA * inside.sum())
    teeth = np.isin(labels, big[big > 0]).astype(np.uint8)
    out = np.zeros(image.shape[:2], np.uint8)
    out[y1:y2, x1:x2] = cv2.dilate(teeth, np.ones((3, 3), np.uint8))
    return out


def pose_signature(face: Face) -> np.ndarray:
    """Yaw, pitch and mouth opening of a face, in units of its inter-ocular distance (for choosing a source photo)."""
    kp = face.keypoints
    eyes = (kp[0] + kp[1]) / 2
    axis = kp[1] - kp[0]
    iod = max(float(np.linalg.norm(axis)), 1e-6)
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    nose = kp[2] - eyes
    mouth = 0.0
    if face.landmarks is not None:
        mouth = float(np.linalg.norm(face.landmarks[MOUTH_CENTRE[0]] - face.landmarks[MOUTH_CENTRE[1]])) / iod
    return np.array([float(nose @ ux) / iod, float(nose @ uy) / iod, mouth], np.float32)


def closest_source(signatures: list[np.ndarray], target: Face) -> int:
    """Index of the source photo (by its pose signature) whose head pose and mouth state are closest to the target's."""
    if len(signatures) == 1:
        return 0
    want = pose_signature(target)
    weights = np.array([1.0, 1.0, 0.5], np.float32)
    return int(np.argmin([float((np.abs(s - want) * weights).sum()) for s in signatures]))


class MeshSwapper:
    """Frame processor ``face_swapper`` with model ``mesh``."""

    name = "face_swapper"
    needs_source = True
    whole_frame = False

    def __init__(self, options: SwapOptions) -> None:
        self.options = options
        self._source_key: int | None = None
        self._triangulations: list[Triangulation] = []
        self._signatures: list[np.ndarray] = []
        self._teeth: list[np.ndarray] = []
        self._colour: dict[int, np.ndarray] = {}

    def _prepare(self, source: SourceIdentity) -> None:
        if self._source_key == id(source):
            return
        self._triangulations, self._signatures, self._teeth = [], [], []
        for image, face in zip(source.images, source.faces):
            if face.landmarks is None:
                raise ValueError("the mesh swapper needs source faces with landmarks")
            tri = triangulate(face.landmarks, OPENINGS)
            rim = np.isin(tri.triangles, FOREHEAD_RIM).any(axis=1)
            self._triangulations.append(Triangulation(tri.triangles, tri.holes | rim))
            self._signatures.append(pose_signature(face))
            self._teeth.append(teeth_mask(image, face.landmarks))
        self._source_key = id(source)
        self._colour.clear()

    def reset(self) -> None:
        """Forget the per-track colour smoothing (a new clip or chunk begins)."""
        self._colour.clear()

    def choose_source(self, target: Face) -> int:
        """Index of the source photo whose head pose and mouth state are closest to the target's."""
        return closest_source(self._signatures, target)

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """The frame with every given face replaced by the source's."""
        if source is None or not faces:
            return frame
        self._prepare(source)
        out = frame.copy()
        for face in faces:
            if face.landmarks is not None:
                self._swap_one(out, face, source)
        return out

    def _swap_one(self, out: np.ndarray, target: Face, source: SourceIdentity) -> None:
        k = self.choose_source(target)
        src_image, src_points = source.images[k], source.faces[k].landmarks
        tri = self._triangulations[k]
        dst = target.landmarks
        assert dst is not None and src_points is not None
        rect = bounding_rect(dst, out.shape)
        if rect is None:
            return
        affines, ok = triangle_affines(dst, src_points, tri.triangles)
        ids = rasterise_ids(dst, tri.triangles, ok & ~tri.holes, rect)
        map_x, map_y, covered = warp_maps(ids, affines, rect)
        sh, sw = src_image.shape[:2]
        covered &= (map_x >= 0) & (map_y >= 0) & (map_x <= sw - 1) & (map_y <= sh - 1)
        covered &= cv2.remap(self._teeth[k], map_x, map_y, cv2.INTER_NEAREST, borderValue=0) == 0  # the target's mouth shows
        if np.count_nonzero(covered) < 16:
            return
        warped = cv2.remap(src_image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x, y, w, h = rect
        region = out[y : y + h, x : x + w]
        if self.options.color_transfer == "on":
            warped = match_lab(warped, covered, self._target_stats(region, covered, target))
        size = max(target.interocular * 2.5, 8.0)
        alpha = feather(covered, size, self.options.face_mask_blur, self.options.face_mask_padding)
        alpha *= float(self.options.face_swapper_weight)
        blended = warped.astype(np.float32)  # region + alpha * (warped - region), in place
        blended -= region
        blended *= alpha[..., None]
        blended += region
        blended += 0.5
        out[y : y + h, x : x + w] = np.clip(blended, 0, 255, out=blended)

    def _target_stats(self, region: np.ndarray, mask: np.ndarray, target: Face) -> np.ndarray:
        """The target skin's colour statistics, smoothed over time per track so the face does not flicker."""
        stats = lab_stats(region, mask)
        if target.track_id is None:
            return stats
        previous = self._colour.get(target.track_id)
        if previous is not None:
            stats = (1 - COLOUR_SMOOTHING) * previous + COLOUR_SMOOTHING * stats
        self._colour[target.track_id] = stats
        return stats
