"""The Python API: a handful of verbs a newcomer understands.

>>> import swapface
>>> result = swapface.swap_image("me.jpg", "group.jpg", face_selector_mode="many")
>>> swapface.swap_video("me.jpg", "clip.mp4", "out/clip-swapped.mp4").frames
>>> swapface.compare_faces("a.jpg", "b.jpg").same_person
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swapface.errors import InputError
from swapface.faces.analyser import FaceAnalyser
from swapface.faces.face import Face, identity_distance
from swapface.options import SwapOptions, parse_options
from swapface.pipeline import Hook, Pipeline, order_faces

if TYPE_CHECKING:
    from swapface.jobs.runner import JobResult, ProgressCallback

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


def swap_video(
    source: str | Path | Sequence[str | Path],
    target: str | Path,
    output: str | Path,
    *,
    reference_face: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> JobResult:
    """Swap the source person into a video file (or a folder of frames) and write ``output``; returns counts.

    Runs in chunks with a work folder beside the output, so calling it again after an interruption resumes.
    ``on_progress`` receives :class:`swapface.jobs.runner.Progress` updates. Options as for :func:`swap_image`.
    """
    from swapface.jobs.local_run import build_spec
    from swapface.jobs.runner import run_job

    opts = parse_options(options)
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    target, output = Path(target), Path(output)
    reference = Path(reference_face) if reference_face is not None else None
    for path in [*sources, target] + ([reference] if reference else []):
        if not path.exists():
            raise InputError(f"cannot read '{path}': no such file")
    if not output.resolve().parent.is_dir():
        raise InputError(f"cannot write '{output}': its folder does not exist")
    return run_job(build_spec(sources, target, output, opts, reference), on_progress=on_progress)


def reference_face_from(image: ImageLike, position: int = 0, order: str = "large-small", **options: Any) -> np.ndarray:
    """A crop of one face of ``image`` (the ``position``-th in selector ``order``), to use as a reference face photo.

    The crop holds the face with a wide margin, so that face is the largest one found in it again."""
    opts = parse_options(options)
    frame = _load(image)
    faces = order_faces(FaceAnalyser.from_options(opts).analyse_still(frame), order)
    if position >= len(faces):
        raise InputError(f"reference face position {position} is out of range: the frame has {len(faces)} face(s)",
                         code="bad_reference_position")
    face = faces[position]
    h, w = frame.shape[:2]
    margin = 0.6 * max(face.width, face.height)
    x0, y0 = int(max(face.box[0] - margin, 0)), int(max(face.box[1] - margin, 0))
    x1, y1 = int(min(face.box[2] + margin, w)), int(min(face.box[3] + margin, h))
    return np.ascontiguousarray(frame[y0:y1, x0:x1])


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
    return Comparison(identity_distance(faces[0].embedding, faces[1].embedding), threshold)
