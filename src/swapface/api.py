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
from swapface.options import parse_options
from swapface.pipeline import Hook, Pipeline
from swapface.validation import refuse_video_options

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
    refuse_video_options(opts)
    sources = [source] if isinstance(source, (str, Path, np.ndarray)) else list(source)
    frame = _load(target)
    reference = _load(reference_face) if reference_face is not None else None
    if reference is None and opts.reference_frame_number is not None:
        from swapface.reference import reference_from_frame

        if opts.reference_frame_number != 0:
            raise InputError("an image has only frame 0 to take the reference face from")
        reference = reference_from_frame(frame, opts)
    pipe = Pipeline(
        [_load(s) for s in sources],
        opts,
        reference=reference,
        pre_frame=pre_frame,
        post_frame=post_frame,
    )
    return pipe.process_frame(frame)


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
