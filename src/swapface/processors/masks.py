"""Face masks for pasting aligned crops back: a soft box, XSeg occlusion, 68-landmark areas and BiSeNet
regions, combined by minimum.

Masks are float32 in [0, 1] on the aligned crop; ``paste_back`` warps crop and mask back into the frame.
As in FaceFusion, the box and the occlusion mask are computed on the target's crop (what covers the
face in the frame), the region mask on the swapped crop (the face that is pasted), the area mask from
the target's 68 landmarks carried into the crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapface.errors import InputError
from swapface.models.catalogue import FACE_REGIONS, OCCLUDER_MODEL, PARSER_MODEL
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype, run_batched
from swapface.models.templates import to_tensor

MASK_TYPES = ("box", "occlusion", "area", "region")

#: The 68-landmark indices (iBUG layout) whose convex hull is each ``face_mask_areas`` area (FaceFusion's
#: ``face_mask_area_set``): upper face = jaw ends, brows and the nose's base; lower face = jaw and the
#: nose's base; mouth = the lips.
FACE_AREAS: dict[str, tuple[int, ...]] = {
    "upper-face": (0, 1, 2, 31, 32, 33, 34, 35, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17),
    "lower-face": (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31),
    "mouth": tuple(range(48, 68)),
}


def box_mask(size: int, blur: float, padding: Sequence[int] = (0, 0, 0, 0)) -> np.ndarray:
    """A size×size mask: edges zeroed by max(blur/2, padding %), then Gaussian-blurred (σ = 0.125 · size · blur)."""
    amount = int(size * 0.5 * blur)
    edge = max(amount // 2, 1)
    top, right, bottom, left = (int(size * p / 100) for p in padding)
    m: np.ndarray = np.ones((size, size), np.float32)
    m[: max(edge, top), :] = 0
    m[size - max(edge, bottom):, :] = 0
    m[:, : max(edge, left)] = 0
    m[:, size - max(edge, right):] = 0
    if amount > 0:
        m = cv2.GaussianBlur(m, (0, 0), amount * 0.25)
    return m


def _soften(m: np.ndarray) -> np.ndarray:
    """The contract's post-processing for learned masks: blur σ 5, clip to [0.5, 1], stretch to [0, 1]."""
    m = cv2.GaussianBlur(np.clip(m, 0, 1).astype(np.float32), (0, 0), 5)
    return (np.clip(m, 0.5, 1.0) - 0.5) * 2.0


def area_mask(size: int, points: np.ndarray, areas: Sequence[str]) -> np.ndarray:
    """A size×size mask: the filled convex hull of the chosen areas' landmarks (68×2, crop pixels, truncated
    to whole pixels as FaceFusion does), softened as the learned masks are."""
    unknown = [a for a in areas if a not in FACE_AREAS]
    if unknown or not areas:
        raise InputError(f"unknown or no face mask area(s) {', '.join(unknown)}; choose from {', '.join(FACE_AREAS)}")
    index = [i for a in areas for i in FACE_AREAS[a]]
    hull = cv2.convexHull(np.asarray(points)[index].astype(np.int32))
    m: np.ndarray = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(m, hull, 1.0)
    return _soften(m)


class OcclusionMasker:
    """XSeg: where the face is visible (hands, hair, glasses in front of it are masked out)."""

    def __init__(self, options: Any = None, models_dir: Path | None = None) -> None:
        name = getattr(options, "face_occluder_model", None) or OCCLUDER_MODEL
        self.model = LazyModel(name, options, models_dir, task="face_occluder")
        self.batch_size = int(getattr(options, "execution_batch_size", 1) or 1)

    def masks(self, crops: np.ndarray) -> np.ndarray:
        """N×S×S masks for N×S×S×3 RGB crops."""
        c = self.model.contract
        n, s = crops.shape[0], crops.shape[1]
        small = np.stack([cv2.resize(x, (c.size, c.size)) for x in crops])
        session = self.model.session
        (out,) = run_batched(session, {session.get_inputs()[0].name: to_tensor(small, c, input_dtype(session))},
                             self.batch_size)[:1]
        out = out.reshape(n, c.size, c.size).astype(np.float32)
        return np.stack([_soften(cv2.resize(m, (s, s))) for m in out])


class RegionMasker:
    """BiSeNet face parsing: the union of the chosen regions (skin, eyes, nose, mouth, …)."""

    def __init__(self, regions: Sequence[str], options: Any = None, models_dir: Path | None = None) -> None:
        unknown = [r for r in regions if r not in FACE_REGIONS]
        if unknown:
            raise InputError(f"unknown face mask region(s) {', '.join(unknown)}; choose from {', '.join(FACE_REGIONS)}")
        self.classes = np.array([FACE_REGIONS[r] for r in regions])
        name = getattr(options, "face_parser_model", None) or PARSER_MODEL
        self.model = LazyModel(name, options, models_dir, task="face_parser")
        self.batch_size = int(getattr(options, "execution_batch_size", 1) or 1)

    def masks(self, crops: np.ndarray) -> np.ndarray:
        """N×S×S masks for N×S×S×3 RGB crops."""
        c = self.model.contract
        s = crops.shape[1]
        big = np.stack([cv2.resize(x, (c.size, c.size)) for x in crops])
        session = self.model.session
        (out,) = run_batched(session, {session.get_inputs()[0].name: to_tensor(big, c, input_dtype(session))},
                             self.batch_size)[:1]
        labels = np.asarray(out).argmax(1)
        chosen = np.isin(labels, self.classes).astype(np.float32)
        return np.stack([_soften(cv2.resize(m, (s, s))) for m in chosen])


class FaceMasker:
    """The combined mask the options ask for (``face_mask_types``), minimum over its parts."""

    def __init__(self, options: Any, models_dir: Path | None = None, *, blur: float | None = None) -> None:
        types = tuple(getattr(options, "face_mask_types", ("box",)))
        unknown = [t for t in types if t not in MASK_TYPES]
        if unknown:
            raise InputError(f"unknown face mask type(s) {', '.join(unknown)}; choose from {', '.join(MASK_TYPES)}")
        self.types = types or ("box",)
        self.blur = float(getattr(options, "face_mask_blur", 0.3) if blur is None else blur)
        self.padding = tuple(getattr(options, "face_mask_padding", (0, 0, 0, 0)))
        self.areas = tuple(getattr(options, "face_mask_areas", tuple(FACE_AREAS))) if "area" in self.types else ()
        if "area" in self.types:
            area_mask(8, np.zeros((68, 2)), self.areas)  # refuses unknown or no areas now, not at the first face
        self.occlusion = OcclusionMasker(options, models_dir) if "occlusion" in self.types else None
        self.region = (
            RegionMasker(tuple(getattr(options, "face_mask_regions", ())), options, models_dir)
            if "region" in self.types else None
        )

    @property
    def model_names(self) -> list[str]:
        """The catalogue models these masks need."""
        return [m.model.entry.name for m in (self.occlusion, self.region) if m is not None]

    @property
    def needs_landmarks(self) -> bool:
        """Whether ``target_masks`` needs each face's 68 landmarks (the ``area`` mask)."""
        return "area" in self.types

    def target_masks(self, crops: np.ndarray, landmarks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """N×S×S float32 masks in [0, 1] from the targets' aligned S×S crops: the box, the occlusion mask and,
        from ``landmarks`` (each face's 68 points in its crop's pixels), the area mask."""
        n, s = crops.shape[:2]
        out = np.ones((n, s, s), np.float32)
        if "box" in self.types:
            out = np.minimum(out, box_mask(s, self.blur, self.padding)[None])
        if self.occlusion is not None:
            out = np.minimum(out, self.occlusion.masks(crops))
        if self.needs_landmarks:
            if landmarks is None or len(landmarks) != n:
                raise ValueError("the area mask needs every face's 68 landmarks")
            out = np.minimum(out, np.stack([area_mask(s, p, self.areas) for p in landmarks]))
        return out

    def swapped_masks(self, swapped: np.ndarray) -> np.ndarray:
        """N×S×S float32 masks in [0, 1] from the swapped crops: the region mask (all ones without it)."""
        n, s = swapped.shape[:2]
        if self.region is None:
            return np.ones((n, s, s), np.float32)
        return self.region.masks(swapped)


def paste_back(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frame`` with ``crop`` (aligned by ``affine``) blended in under ``mask``; only the crop's footprint changes."""
    h, w = frame.shape[:2]
    s = crop.shape[0]
    inverse = cv2.invertAffineTransform(affine)
    corners = np.array([[0, 0], [s, 0], [0, s], [s, s]], np.float32) @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), [w, h])
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    inv = inverse.copy()
    inv[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    warped = cv2.warpAffine(crop, inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(mask.astype(np.float32), inv, size, flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region * (1 - m) + warped.astype(np.float32) * m + 0.5, 0, 255).astype(np.uint8)
    return out
