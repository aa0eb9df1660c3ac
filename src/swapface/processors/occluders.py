"""What lies in front of a face — glasses frames, hair across it — estimated from the image alone (no neural
model), so the built-in swapper can leave it in front of the swapped face.

Everything is worked out on a crop aligned on the eyes at ``WORK_IOD`` pixels between them (the same
thresholds then hold for every face size) and brought back to the frame as a soft mask:

- glasses frames: thin structures darker than their surroundings (a morphological black-hat on grey,
  relative to the skin's own grey level) in a band around each eye, the eye openings and brows left out;
  only a connected structure that runs round the eyes (a rim: many directions seen from the eye centres) is
  taken, so lid creases, lashes, wrinkles, brows and shadows are not;
- hair across the face: what is coloured like the hair and backdrop around the face and connected to them
  (``mesh_render.not_face_probability``), on the upper face only, far from the skin's colour, and only where it
  reaches well inside the face (slivers along the silhouette are the renderer's edge fade's already);
- something held in front of the lower face (a microphone, a phone): coloured neither like the skin nor like a
  beard, as on a source photo (``mesh_render.in_front_of_lower_face``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.faces.mediapipe import LEFT_EYE_RING, RIGHT_EYE_RING
from swapface.geometry.face_topology import LEFT_BROW, RIGHT_BROW, FaceTopology
from swapface.processors.mesh_render import in_front_of_lower_face, interocular, not_face_probability

WORK_IOD = 64.0  # pixels between the eyes on the working crop
CROP_EXTENT = (1.5, 1.8, 1.6)  # inter-ocular distances: the crop's half-width, reach above and below the eyes
# the crop searched for what is held in front of the lower face: the face crop reaching further down, past the chin
# (aligned as it is, so a mask on either comes back to the frame through the same warp)
HELD_CROP_EXTENT = (*CROP_EXTENT[:2], 2.4)
RIM_KERNEL = 0.14  # inter-ocular distances: frames thinner than this stand out in the black-hat
RIM_CONTRAST = 0.18  # a frame pixel is darker than its surroundings by this share of the skin's grey level
RIM_BAND = (0.62, 0.5)  # inter-ocular distances: half-axes of the ellipse round each eye where rims lie
ARM_BAND = (0.85, 0.62)  # inter-ocular distances: half-axes of the ellipse round each eye where hinges and arms are
RIM_COVERAGE = 28  # 10° directions (of 36 per eye, both eyes counted) a rim must be seen in from the eye centres
RIM_TRACK = 0.08  # inter-ocular distances: width of the band along a rim's fitted ellipse searched for its unseen part
KEEP_OUT = 0.06  # inter-ocular distances the eye openings are grown by before being left out (lids, lashes)
HAIR_PROBABILITY = 0.75  # not-face probability above which a pixel inside the face may be hair
HAIR_DARKER = 12.0  # CIELAB lightness under the skin's median by which a pixel may be hair
HAIR_CHROMA = 15.0  # CIELAB (a, b) distance from the skin's median colour beyond which a pixel may be hair
HAIR_SCALE = 0.5  # share of the working crop's size hair is looked for at
HAIR_EDGE = 0.06  # inter-ocular distances: a strand starts this near the face's silhouette (it comes from outside)
HAIR_REACH = 0.22  # inter-ocular distances a strand must reach inside the face's silhouette to count
HAIR_SOFTNESS = 0.04  # inter-ocular distances: the feather of a strand's edge where the swapped skin meets it
HAIR_MAX_SHARE = 0.3  # more of the face than this marked as hair means the backdrop looks like skin: none is kept
MOUTH_CORNERS = [61, 291]


@dataclass(frozen=True)
class Occluders:
    """What covers one face: a soft mask (0..1) over a rectangle of the frame, and whether glasses were seen."""

    rect: tuple[int, int, int, int]  # x, y, w, h in the frame
    alpha: np.ndarray  # (h, w) float32: 1 where the occluder is, fading at its edge
    glasses: bool

    @classmethod
    def none(cls) -> Occluders:
        """Nothing in front of the face."""
        return cls((0, 0, 0, 0), np.zeros((0, 0), np.float32), False)

    @property
    def found(self) -> bool:
        """Whether anything lies in front of the face."""
        return bool(self.alpha.size) and bool((self.alpha > 0.5).any())

    def frame_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """A frame-sized bool mask of the occluders (the renderer's ``occluded``)."""
        mask = np.zeros(shape[:2], bool)
        x, y, w, h = self.rect
        if w and h:
            mask[y : y + h, x : x + w] = self.alpha > 0.5
        return mask

    def pixels(self, frame: np.ndarray) -> np.ndarray:
        """A copy of the frame's pixels under the occluders' rectangle (taken before the face is drawn)."""
        x, y, w, h = self.rect
        return frame[y : y + h, x : x + w].copy()

    def restore(self, frame: np.ndarray, kept: np.ndarray) -> None:
        """Put the occluders back over ``frame`` (changed in place) from ``kept`` (``pixels`` taken before the
        face was drawn): they stay in front of the new face, their soft edge blending into it."""
        if not self.found:
            return
        x, y, w, h = self.rect
        a = self.alpha[..., None]
        region = frame[y : y + h, x : x + w].astype(np.float32)
        frame[y : y + h, x : x + w] = np.clip(region * (1 - a) + kept.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)

    def union(self, other: Occluders) -> Occluders:
        """Both occluders' masks (their maximum) over the rectangle holding both."""
        if not other.alpha.size:
            return self
        if not self.alpha.size:
            return Occluders(other.rect, other.alpha, self.glasses or other.glasses)
        (ax, ay, aw, ah), (bx, by, bw, bh) = self.rect, other.rect
        x0, y0 = min(ax, bx), min(ay, by)
        x1, y1 = max(ax + aw, bx + bw), max(ay + ah, by + bh)
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        for (x, y, w, h), part in ((self.rect, self.alpha), (other.rect, other.alpha)):
            window = alpha[y - y0 : y - y0 + h, x - x0 : x - x0 + w]
            np.maximum(window, part, out=window)
        return Occluders((x0, y0, x1 - x0, y1 - y0), alpha, self.glasses or other.glasses)


@dataclass(frozen=True)
class FaceCrop:
    """A face aligned on its eyes at WORK_IOD pixels between them: the image, its mesh and the warp."""

    image: np.ndarray  # RGB uint8
    points: np.ndarray  # (468, 2) crop pixels
    affine: np.ndarray  # 2×3 frame → crop

    @classmethod
    def of(cls, image: np.ndarray, points: np.ndarray, extent: tuple[float, float, float] = CROP_EXTENT) -> FaceCrop:
        """The aligned crop of the face whose mesh (frame pixels) is ``points``, ``extent`` eye distances wide
        (half), above and below the eyes."""
        affine = eye_alignment(points, extent)
        crop = cv2.warpAffine(image, affine, crop_size(extent), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        return cls(crop, (points[:, :2] @ affine[:, :2].T + affine[:, 2]).astype(np.float32), affine)

    def top(self, extent: tuple[float, float, float]) -> FaceCrop:
        """This crop cut to ``extent`` (same width and reach above the eyes, less below: the same warp, so the same
        pixels as a crop made with it)."""
        return FaceCrop(self.image[: crop_size(extent)[1]], self.points, self.affine)

    def occluders(self, frames: np.ndarray, hair: np.ndarray, frame_shape: tuple[int, ...]) -> Occluders:
        """Occluders over the frame from bool masks on this crop (see :func:`masks_to_frame`)."""
        return masks_to_frame(frames, hair, self.affine, frame_shape)


def crop_size(extent: tuple[float, float, float]) -> tuple[int, int]:
    """(width, height) in pixels of an eye-aligned crop ``extent`` eye distances wide (half), above and below."""
    half, above, below = (WORK_IOD * e for e in extent)
    return int(2 * half), int(above + below)


def eye_alignment(points: np.ndarray, extent: tuple[float, float, float] = CROP_EXTENT) -> np.ndarray:
    """The 2×3 warp, frame → crop, that puts a face's eye centres (its mesh in frame pixels: ``points``) WORK_IOD
    apart on a level line, the crop's origin ``extent[0]`` eye distances left of their middle and ``extent[1]``
    above (crops that differ only in their reach below the eyes share it)."""
    right, left = points[RIGHT_EYE_RING, :2].mean(0), points[LEFT_EYE_RING, :2].mean(0)
    d = (left - right).astype(np.float64)
    c, s = d * WORK_IOD / max(float(d @ d), 1.0)  # turns and scales the eye line onto (WORK_IOD, 0)
    rot = np.array([[c, s], [-s, c]])
    centre = (right + left) / 2
    origin = np.array([WORK_IOD * extent[0], WORK_IOD * extent[1]])
    return np.concatenate([rot, (origin - rot @ centre)[:, None]], axis=1)


def masks_to_frame(frames: np.ndarray, hair: np.ndarray, affine: np.ndarray, frame_shape: tuple[int, ...]) -> Occluders:
    """Occluders over the frame from bool masks on a crop made by ``affine`` (frame → crop): glasses frames grown by
    a pixel and barely softened (their anti-aliased edges go with them), hair feathered over HAIR_SOFTNESS (a
    strand's edge is soft; a hard one would read as a seam). A video track's masks, estimated a few frames back,
    come back to the frame through the face's current alignment: they follow the head."""
    if not frames.any() and not hair.any():
        return Occluders.none()
    alpha = np.zeros(frames.shape, np.float32)
    if frames.any():
        grown = cv2.dilate(frames.astype(np.uint8), _disc(1)).astype(np.float32)
        alpha = np.clip(cv2.GaussianBlur(grown, (0, 0), 0.7) * 1.5, 0.0, 1.0)
    if hair.any():
        feather = HAIR_SOFTNESS * WORK_IOD  # the strand itself stays whole, its edge fades into the skin beside it
        grown = cv2.dilate(hair.astype(np.uint8), _disc(feather / 2)).astype(np.float32)
        alpha = np.maximum(alpha, cv2.GaussianBlur(grown, (0, 0), feather))
    return dataclasses.replace(crop_to_frame(alpha, affine, frame_shape), glasses=bool(frames.any()))


def estimate_occluders(image: np.ndarray, points: np.ndarray, topology: FaceTopology, *, hair: bool = True) -> Occluders:
    """What lies in front of the face whose mesh (frame pixels, (468, 2 or 3)) is ``points`` in ``image`` (RGB):
    glasses frames and, with ``hair``, hair across the face."""
    if interocular(points) < 8:
        return Occluders.none()
    crop = FaceCrop.of(image, points)
    frames = glasses_frames(crop.image, crop.points, topology)
    strands = hair_across(crop.image, crop.points, topology) if hair else np.zeros_like(frames)
    return crop.occluders(frames, strands, image.shape)


def glasses_frames(crop: np.ndarray, points: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """Bool mask (crop-sized) of glasses frames on an eye-aligned crop with WORK_IOD pixels between the eyes."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    blackhat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, _disc(RIM_KERNEL * WORK_IOD / 2))
    relative = blackhat / max(_skin_grey(grey, points, topology), 20.0)
    shape = grey.shape
    eyes = np.array([points[RIGHT_EYE_RING].mean(0), points[LEFT_EYE_RING].mean(0)], np.float32)
    band, reach = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for cx, cy in eyes:
        centre = (int(round(cx)), int(round(cy + 0.03 * WORK_IOD)))
        cv2.ellipse(band, centre, (int(RIM_BAND[0] * WORK_IOD), int(RIM_BAND[1] * WORK_IOD)), 0, 0, 360, 1, -1)
        cv2.ellipse(reach, centre, (int(ARM_BAND[0] * WORK_IOD), int(ARM_BAND[1] * WORK_IOD)), 0, 0, 360, 1, -1)
    face = _polygon(shape, [points])
    openings = _polygon(shape, [points[RIGHT_EYE_RING], points[LEFT_EYE_RING]], KEEP_OUT * WORK_IOD)
    brows = np.zeros(shape, np.uint8)  # the brows' own outlines: a rim running just under a brow is still seen
    cv2.fillPoly(brows, [np.round(points[RIGHT_BROW]).astype(np.int32), np.round(points[LEFT_BROW]).astype(np.int32)], 1)
    kept_out = openings | brows
    dark = relative > RIM_CONTRAST
    candidates = dark & (band > 0) & (face > 0) & (kept_out == 0)
    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    rims = rim_coverage(labels, count, eyes) >= RIM_COVERAGE
    rims[0] = False
    frames = rims[labels]
    if not frames.any():
        return frames
    # where a rim crosses a brow (left out above) or a glint breaks it: follow its curve
    frames |= _rim_tracks(frames, eyes, band) & (openings == 0) & (face > 0) & dark
    # the hinges and arms: dark structures joined to the rims, a little further out
    count, labels = cv2.connectedComponents((dark & (reach > 0) & (kept_out == 0)).astype(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[np.unique(labels[frames])] = True
    joined[0] = False
    return frames | joined[labels]


def _rim_tracks(frames: np.ndarray, eyes: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Bool mask: a band along the ellipse fitted to each eye's rim pixels (where the rim runs, seen or not)."""
    tracks = np.zeros(frames.shape, np.uint8)
    ys, xs = np.nonzero(frames & (band > 0))
    side = np.abs(xs[:, None] - eyes[None, :, 0]).argmin(1)
    width = max(int(round(RIM_TRACK * WORK_IOD)), 2)
    for k in range(len(eyes)):
        mine = np.c_[xs[side == k], ys[side == k]].astype(np.float32)
        if len(mine) >= 20:
            cv2.ellipse(tracks, cv2.fitEllipse(mine), 1, width)
    return tracks.astype(bool)


def rim_coverage(labels: np.ndarray, count: int, eyes: np.ndarray) -> np.ndarray:
    """Per connected component (``labels``, ``count`` of them), in how many 10° directions counted round each eye
    centre it is seen (each pixel belongs to the nearer eye): a rim round both eyes scores up to 72, a crease or
    a wrinkle a few."""
    ys, xs = np.nonzero(labels)
    side = np.abs(xs[:, None] - eyes[None, :, 0]).argmin(1)
    angles = np.degrees(np.arctan2(ys - eyes[side, 1], xs - eyes[side, 0]))
    direction = side * 36 + ((angles + 180.0) // 10).astype(int).clip(0, 35)
    seen = np.unique(labels[ys, xs].astype(np.int64) * 72 + direction)
    return np.bincount(seen // 72, minlength=count)


def hair_across(crop: np.ndarray, points: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """Bool mask (crop-sized) of hair lying across the upper face: coloured like the hair and backdrop around the
    face and connected to them, darker than the skin or off its colour, reaching from the face's edge well inside.

    Worked out at HAIR_SCALE of the crop: only broad strands matter (fine ones are lost in the blend anyway)."""
    full = crop.shape[:2]
    small = cv2.resize(crop, None, fx=HAIR_SCALE, fy=HAIR_SCALE, interpolation=cv2.INTER_AREA)
    pts = points * HAIR_SCALE
    iod = WORK_IOD * HAIR_SCALE
    shape = small.shape[:2]
    probability = not_face_probability(small, np.c_[pts, np.zeros(len(pts), np.float32)], topology)
    face = _polygon(shape, [pts])
    eyes_brows = _polygon(shape, [pts[RIGHT_EYE_RING], pts[LEFT_EYE_RING], pts[RIGHT_BROW], pts[LEFT_BROW]], 1)
    upper = (face > 0) & (eyes_brows == 0)
    upper[int(pts[MOUTH_CORNERS, 1].mean()):, :] = False  # below the mouth a beard is the face's own
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32) * (100 / 255, 1, 1)
    xy = np.round(pts[topology.skin_vertices]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < shape[1]) & (xy[:, 1] < shape[0])
    skin = np.median(lab[xy[inside, 1], xy[inside, 0]], axis=0) if inside.any() else lab[upper].mean(0)
    darker = lab[..., 0] < skin[0] - HAIR_DARKER
    off_colour = np.linalg.norm(lab[..., 1:] - skin[1:], axis=-1) > HAIR_CHROMA
    hair = (probability > HAIR_PROBABILITY) & upper & (darker | off_colour)
    if hair.sum() > HAIR_MAX_SHARE * max(int(face.sum()), 1):
        return np.zeros(full, bool)
    depth = cv2.distanceTransform(face, cv2.DIST_L2, 3)
    count, labels = cv2.connectedComponents(hair.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(full, bool)
    deepest = np.zeros(count, np.float32)
    np.maximum.at(deepest, labels.ravel(), depth.ravel())
    shallowest = np.full(count, np.inf, np.float32)
    np.minimum.at(shallowest, labels.ravel(), depth.ravel())
    strands = (deepest >= HAIR_REACH * iod) & (shallowest <= HAIR_EDGE * iod)  # from the edge, well inside
    strands[0] = False
    found = strands[labels].astype(np.float32)
    return cv2.resize(found, (full[1], full[0]), interpolation=cv2.INTER_LINEAR) > 0.5


def remove_frames(image: np.ndarray, occluders: Occluders) -> np.ndarray:
    """``image`` with the occluders' pixels painted over from the skin around them (a source photo's glasses
    frames are not copied onto the target); the image itself is not changed."""
    if not occluders.found:
        return image
    x, y, w, h = occluders.rect
    pad = 8
    x0, y0 = max(x - pad, 0), max(y - pad, 0)
    x1, y1 = min(x + w + pad, image.shape[1]), min(y + h + pad, image.shape[0])
    holes = np.zeros((y1 - y0, x1 - x0), np.uint8)
    holes[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = occluders.alpha > 0.25
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(np.ascontiguousarray(image[y0:y1, x0:x1]), holes, 3, cv2.INPAINT_TELEA)
    return out


def held_in_front(crop: FaceCrop, depth: np.ndarray, topology: FaceTopology, shading: np.ndarray, iod: float) -> np.ndarray:
    """A bool mask on the crop (made with HELD_CROP_EXTENT, to see past the chin): something held in front of the
    face below its mouth (a microphone, a phone), found as on a source photo. ``depth``: the mesh's z in frame
    pixels, ``iod`` its eye distance there (the crop scales both by WORK_IOD / iod); ``shading``: the face's fitted
    light per vertex."""
    points = np.c_[crop.points, np.asarray(depth, np.float32) * (WORK_IOD / max(iod, 1.0))].astype(np.float32)
    return in_front_of_lower_face(crop.image, points, topology, shading) > 0.5


def from_visibility(visible: np.ndarray, affine: np.ndarray, frame_shape: tuple[int, ...]) -> Occluders:
    """Occluders from a learned occlusion mask (1 where the face is seen) on an aligned crop made by ``affine``
    (frame → crop): what the model says hides the face, brought back over the frame."""
    return crop_to_frame(np.clip(1.0 - visible, 0.0, 1.0), affine, frame_shape)


def crop_to_frame(mask: np.ndarray, affine: np.ndarray, frame_shape: tuple[int, ...]) -> Occluders:
    """A soft mask (float32, 0..1) on a crop made by ``affine`` (2×3, frame → crop) as Occluders over the frame
    rectangle it covers."""
    ys, xs = np.nonzero(mask > 0)
    if not len(xs):
        return Occluders.none()
    inverse = cv2.invertAffineTransform(affine.astype(np.float64))
    corners = np.array([[xs.min() - 2, ys.min() - 2], [xs.max() + 3, ys.min() - 2],
                        [xs.min() - 2, ys.max() + 3], [xs.max() + 3, ys.max() + 3]], np.float64)
    frame_corners = corners @ inverse[:, :2].T + inverse[:, 2]
    h, w = frame_shape[:2]
    x0, y0 = np.maximum(np.floor(frame_corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(frame_corners.max(0)).astype(int), (w, h))
    if x1 <= x0 or y1 <= y0:
        return Occluders.none()
    inverse[:, 2] -= (x0, y0)
    alpha = cv2.warpAffine(mask.astype(np.float32), inverse, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                           borderValue=0.0)
    return Occluders((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), np.clip(alpha, 0.0, 1.0), False)


def _disc(radius: float) -> np.ndarray:
    r = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _polygon(shape: tuple[int, int], polygons: list[np.ndarray], grow: float = 0.0) -> np.ndarray:
    """A uint8 mask of filled convex hulls of point sets, grown by ``grow`` pixels."""
    mask = np.zeros(shape, np.uint8)
    for points in polygons:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points * 16).astype(np.int32)), 1, cv2.LINE_8, 4)
    return cv2.dilate(mask, _disc(grow)) if grow > 0 else mask


def _skin_grey(grey: np.ndarray, points: np.ndarray, topology: FaceTopology) -> float:
    """Median grey level of the plain-skin vertices (forehead, nose, upper cheeks)."""
    h, w = grey.shape
    xy = np.round(points[topology.skin_vertices]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < w) & (xy[:, 1] < h)
    values = cv2.GaussianBlur(grey, (0, 0), 1.5)[xy[inside, 1], xy[inside, 0]]
    return float(np.median(values)) if len(values) else float(np.median(grey))
