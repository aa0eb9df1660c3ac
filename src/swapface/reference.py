"""The reference person taken from the target itself (FaceFusion's ``--reference-frame-number`` and position).

Instead of a separate photo, one face of one frame of the target says whom to replace: the face is cut
out with a wide margin, and that crop serves as the reference face photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swapface.errors import InputError
from swapface.faces.face import Face
from swapface.options import SwapOptions

MARGIN = 0.6  # of the face's larger side, around its box


def order_faces(faces: list[Face], order: str = "large-small") -> list[Face]:
    """Faces sorted by a selector order (FaceFusion's names): mode 'one' takes the first, positions count in it."""
    keys = {
        "large-small": lambda f: -f.area, "small-large": lambda f: f.area,
        "left-right": lambda f: f.center[0], "right-left": lambda f: -f.center[0],
        "top-bottom": lambda f: f.center[1], "bottom-top": lambda f: -f.center[1],
        "best-worst": lambda f: -f.score, "worst-best": lambda f: f.score,
    }
    return sorted(faces, key=keys[order])


def target_frame(target: Path, number: int) -> np.ndarray:
    """Frame ``number`` of a video, a folder of frames or (number 0) an image, as RGB."""
    from swapface.media.image import is_image_path, read_image

    if target.is_file() and is_image_path(target):
        if number != 0:
            raise InputError(f"reference frame {number}: the target '{target.name}' is an image (frame 0 only)",
                             code="bad_reference_frame")
        return read_image(target)
    from swapface.media.video import decode_frames, probe

    info = probe(target)
    if number >= info.frames:
        raise InputError(f"reference frame {number}: the target '{target.name}' has {info.frames} frame(s)",
                         code="bad_reference_frame")
    frame = next((rgb for _, _, rgb in decode_frames(target, info, number, number + 1)), None)
    if frame is None:
        raise InputError(f"frame {number} of '{target.name}' could not be decoded", code="bad_reference_frame")
    return frame


def face_crop(frame: np.ndarray, face: Face) -> np.ndarray:
    """The face with a wide margin, so it is the largest face found in the crop again."""
    h, w = frame.shape[:2]
    margin = MARGIN * max(face.width, face.height)
    x0, y0 = int(max(face.box[0] - margin, 0)), int(max(face.box[1] - margin, 0))
    x1, y1 = int(min(face.box[2] + margin, w)), int(min(face.box[3] + margin, h))
    return np.ascontiguousarray(frame[y0:y1, x0:x1])


def reference_from_frame(frame: np.ndarray, options: SwapOptions, analyser=None) -> np.ndarray:
    """The crop of face ``options.reference_face_position`` (in ``options.face_selector_order``) of ``frame``."""
    from swapface.faces.analyser import FaceAnalyser

    analyser = analyser or FaceAnalyser.from_options(options)
    faces = order_faces(analyser.analyse_still(frame), options.face_selector_order)
    position = options.reference_face_position
    if position >= len(faces):
        raise InputError(f"reference face position {position} is out of range: the frame has {len(faces)} face(s)",
                         code="bad_reference_position")
    return face_crop(frame, faces[position])


def reference_from_target(target: Path, options: SwapOptions, analyser=None) -> np.ndarray:
    """The reference face photo that ``--reference-frame-number`` and ``--reference-face-position`` point at."""
    return reference_from_frame(target_frame(target, options.reference_frame_number or 0), options, analyser)
