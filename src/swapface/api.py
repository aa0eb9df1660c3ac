"""The Python API: a handful of verbs a newcomer understands.

>>> import swapface
>>> result = swapface.swap_image("me.jpg", "group.jpg", face_selector_mode="many")
>>> swapface.compare_faces("a.jpg", "b.jpg").same_person
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swapface.errors import InputError
from swapface.faces.analyser import FaceAnalyser
from swapface.faces.face import Face, identity_distance
from swapface.options import parse_options
from swapface.pipeline import Hook, Pipeline

ImageLike = str | Path | np.ndarray


def _load(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError("images must be H×W×3 uint8 RGB arrays")
        return image
    from swapface.media.image import read_image

    return read_image(image)


def swap_image(
    source: ImageLike | Sequence[ImageLike],
    target: ImageLike,
    *,
    reference_face: ImageLike | None = None,
    pre_frame: Hook | None = None,
    post_frame: Hook | None = None,
    **options: Any,
) -> np.ndarray:
    """Put the source person's face onto the face(s) of ``target``; returns the result as an RGB array.

    ``source`` may be several photos of one person. Options are :class:`SwapOptions` fields
    (``face_selector_mode="many"``, ``face_mask_blur=0.4`` …).
    """
    opts = parse_options(options)
    sources = [source] if isinstance(source, (str, Path, np.ndarray)) else list(source)
    pipe = Pipeline(
        [_load(s) for s in sources],
        opts,
        reference=_load(reference_face) if reference_face is not None else None,
        pre_frame=pre_frame,
        post_frame=post_frame,
    )
    return pipe.process_frame(_load(target))


def detect_faces(image: ImageLike, **options: Any) -> list[Face]:
    """Every face in an image with box, keypoints, 468-point mesh and identity embedding, largest first."""
    opts = parse_options(options)
    return FaceAnalyser.from_options(opts).analyse_still(_load(image))


@dataclass(frozen=True)
class Comparison:
    """The identity distance between two faces and whether it is under the recogniser's threshold."""

    distance: float
    threshold: float

    @property
    def same_person(self) -> bool:
        return self.distance <= self.threshold


def compare_faces(a: ImageLike, b: ImageLike, **options: Any) -> Comparison:
    """Compare the main (largest) faces of two images."""
    opts = parse_options(options)
    analyser = FaceAnalyser.from_options(opts)
    faces = []
    for number, image in enumerate((a, b), start=1):
        found = analyser.analyse_still(_load(image))
        if not found:
            raise InputError(f"no face found in image #{number}")
        faces.append(found[0])
    threshold = float(getattr(analyser.embedder, "match_distance", 0.6))
    first, second = faces[0].embedding, faces[1].embedding
    if first is None or second is None:
        raise InputError("the face recogniser produced no identity embedding")
    return Comparison(identity_distance(first, second), threshold)
