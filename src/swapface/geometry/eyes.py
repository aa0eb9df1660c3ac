"""Where a face looks: the iris inside each eye's lid line, found as the opening's darkest iris-sized blob.

The renderer draws the source's eyes into the target's lid openings with each source iris moved to where
the target's iris is, so the swapped face shows the source's eyes but keeps the target's gaze and blinks.
"""

from __future__ import annotations

import cv2
import numpy as np

# opening area ÷ eye width² under which an eye is too closed to tell where it looks (an almond-shaped opening about
# 0.23 eye widths high; a smiling eye's 0.17 is under it: where its fellow is read, ``both_irises`` borrows that)
MIN_OPENING = 0.18
MIN_IRIS_CONTRAST = 6.0  # grey levels by which the iris must be darker than the opening's median
IRIS_BLUR = 0.12  # eye widths: about an iris radius
# eye widths across by which the two irises may sit differently in their openings (the eyes turn together; a near
# look or a skewed lid ring parts them by up to about 0.25): past it, one of the two is a dark corner, not an iris
MAX_GAZE_DISAGREEMENT = 0.3


def eye_width(ring: np.ndarray) -> float:
    """Corner-to-corner width of an eye's 16-point lid ring (corners at indices 0 and 8)."""
    return float(np.linalg.norm(ring[0, :2] - ring[8, :2]))


def _opening(image: np.ndarray, ring: np.ndarray, min_width: float, min_opening: float
             ) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """An eye's opening inside its lid ``ring`` (2D points): a uint8 mask and the float32 grey levels over the
    ring's bounding box, and the box's top-left corner (x, y) in ``image``; None where the eye is narrower than
    ``min_width`` pixels, its box is cut away by the image's border, or the opening covers less than
    ``min_opening`` of the eye's width squared."""
    width = eye_width(ring)
    if width < min_width:
        return None
    x1, y1 = np.floor(ring.min(0)).astype(int) - 1
    x2, y2 = np.ceil(ring.max(0)).astype(int) + 2
    h, w = image.shape[:2]
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 4 or y2 - y1 < 3:
        return None
    inside = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(inside, [np.round((ring - (x1, y1)) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    if inside.sum() < min_opening * width * width:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return inside, grey, int(x1), int(y1)


def iris_centre(image: np.ndarray, ring: np.ndarray) -> np.ndarray | None:
    """The iris centre (x, y, frame pixels) inside the lid ``ring`` of an RGB image, or None where the eye is
    closed, tiny or without a darker iris (the mean grey over an iris-sized disc, counting only pixels inside
    the opening, is lowest at the iris: lashes along the lid are too thin to win)."""
    ring = np.asarray(ring, np.float32)[:, :2]
    width = eye_width(ring)
    opened = _opening(image, ring, 6.0, MIN_OPENING)
    if opened is None:
        return None
    inside, grey, x1, y1 = opened
    weight = inside.astype(np.float32)
    sigma = max(IRIS_BLUR * width, 0.8)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    mean = cv2.GaussianBlur(grey * weight, (0, 0), sigma) / np.maximum(den, 1e-6)
    candidates = (inside > 0) & (den > 0.35)
    if not candidates.any():
        return None
    darkest = np.where(candidates, mean, np.inf)
    row, col = np.unravel_index(int(np.argmin(darkest)), darkest.shape)
    if float(np.median(grey[inside > 0])) - float(mean[row, col]) < MIN_IRIS_CONTRAST:
        return None
    return np.array([x1 + col, y1 + row], np.float32)


def opening_mask(shape: tuple[int, ...], rings: list[np.ndarray]) -> np.ndarray:
    """A uint8 mask (image-sized) of the openings inside the given lid rings."""
    mask = np.zeros(shape[:2], np.uint8)
    for ring in rings:
        cv2.fillPoly(mask, [np.round(np.asarray(ring, np.float32)[:, :2] * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask


def in_eye_units(point: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """A point relative to an eye: its offset from the lid ring's centre in eye widths (steady as a head moves)."""
    ring = np.asarray(ring, np.float32)[:, :2]
    return ((np.asarray(point, np.float32) - ring.mean(0)) / max(eye_width(ring), 1.0)).astype(np.float32)


def from_eye_units(offset: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """The inverse of ``in_eye_units``: frame pixels of an offset given in eye widths from the ring's centre."""
    ring = np.asarray(ring, np.float32)[:, :2]
    return (ring.mean(0) + np.asarray(offset, np.float32) * max(eye_width(ring), 1.0)).astype(np.float32)


def both_irises(image: np.ndarray, rings: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The iris centres (frame pixels) of a face's two eyes, given their lid ``rings``; (None, None) where neither
    is seen. The eyes look the same way: where their irises sit more than MAX_GAZE_DISAGREEMENT eye widths apart
    across their openings, the one farther from its opening's centre is a dark corner (a shadow, lashes or
    make-up, darker than a pale iris), and an eye whose iris is not seen takes its fellow's place in eye widths,
    so a drawn pair never looks two ways."""
    rings = (np.asarray(rings[0], np.float32)[:, :2], np.asarray(rings[1], np.float32)[:, :2])
    found = [iris_centre(image, ring) for ring in rings]
    offsets = [None if centre is None else in_eye_units(centre, ring) for centre, ring in zip(found, rings)]
    if offsets[0] is not None and offsets[1] is not None and abs(offsets[0][0] - offsets[1][0]) > MAX_GAZE_DISAGREEMENT:
        found[int(abs(offsets[1][0]) > abs(offsets[0][0]))] = None
    for side in (0, 1):
        fellow = found[1 - side]
        if found[side] is None and fellow is not None:
            found[side] = from_eye_units(in_eye_units(fellow, rings[1 - side]), rings[side])
    return found[0], found[1]


CATCHLIGHT_SIZE = 0.2  # eye widths: a catchlight is a bright spot narrower than this (the white of the eye is wider)
CATCHLIGHT_AREA = 0.05  # eye widths squared: ... and covers at most this much
MIN_CATCHLIGHT_EYE = 20.0  # pixels corner to corner under which an eye's catchlights are not told apart


def catchlights(image: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The catchlights in an eye: a bool mask over the lid ``ring``'s bounding box and the box's top-left
    corner (x, y) in ``image`` (RGB), or None where the eye shows none.

    A catchlight is the room's light mirrored in the eye. A source's, drawn into another photo, shows a window
    or softbox that is not there, and shrunk with a large eye it greys a dark iris into a pale blue one. It is
    a spot brighter than the white of the eye by a margin, narrower than ``CATCHLIGHT_SIZE`` (a white top-hat:
    the white of the eye is wider), and set in the dark iris (what surrounds it is darker than halfway between
    the iris and the white; a glint on the white of the eye is not one)."""
    ring = np.asarray(ring, np.float32)[:, :2]
    width = eye_width(ring)
    opened = _opening(image, ring, MIN_CATCHLIGHT_EYE, MIN_OPENING / 2)
    if opened is None:
        return None
    inside, grey, x1, y1 = opened
    seen = np.sort(grey[inside > 0])
    dark, white = float(seen[int(0.15 * (len(seen) - 1))]), float(seen[int(0.75 * (len(seen) - 1))])  # percentiles
    bright = (inside > 0) & (grey >= white + max(12.0, 0.25 * (255.0 - white)))
    if not bright.any():  # most eyes: nothing brighter than their white
        return None
    side = max(3, int(round(CATCHLIGHT_SIZE * width)) | 1)
    spots = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    bright &= spots >= 0.4 * max(white - dark, 30.0)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright.astype(np.uint8), connectivity=8)
    found = np.zeros(bright.shape, bool)
    ring_kernel = np.ones((5, 5), np.uint8)
    for i in range(1, count):
        if stats[i, cv2.CC_STAT_AREA] > CATCHLIGHT_AREA * width * width:
            continue
        spot = labels == i
        around = (cv2.dilate(spot.astype(np.uint8), ring_kernel) > 0) & ~spot & (inside > 0)
        if around.any() and float(np.median(grey[around])) < (dark + white) / 2:
            found |= spot
    if not found.any():
        return None
    return found, x1, y1


def without_catchlights(image: np.ndarray, rings: list[np.ndarray]) -> np.ndarray:
    """``image`` with the catchlights of the eyes inside ``rings`` painted over from the iris around them (a copy;
    ``image`` itself where there are none)."""
    out = image
    for ring in rings:
        found = catchlights(image, ring)
        if found is None:
            continue
        spots, x, y = found
        if out is image:
            out = image.copy()
        holes = cv2.dilate(spots.astype(np.uint8), np.ones((3, 3), np.uint8))  # with the soft rim a blur leaves
        box = np.ascontiguousarray(out[y : y + holes.shape[0], x : x + holes.shape[1]])
        out[y : y + holes.shape[0], x : x + holes.shape[1]] = cv2.inpaint(box, holes, 2, cv2.INPAINT_TELEA)
    return out
