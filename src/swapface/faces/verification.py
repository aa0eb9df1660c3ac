"""Second check of every detection on its refined mesh, and one face per person.

A detector box is kept only when the mesh fitted inside it agrees that it is a face:

- ``MIN_PRESENCE``: the mesh model's face-presence score on the refined crop is at least 0.6. The
  model doubts some real faces that it sees well mirrored (a turned, blurred face scored 0.34, and
  0.97 mirrored), so the mirrored crop's score counts too, but only when it is high
  (``MIN_MIRRORED_PRESENCE``) for a confident detection (``MIN_SCORE_FOR_MIRROR``): a cat's face
  scored 0.32 and 0.77 mirrored, a car's rear 0.17 and 0.77 mirrored at detector score 0.79.
  Measured on the development photos: real faces 0.93-1.00 (best of the two); non-faces kept by the
  detector (cat, dog muzzles, clocks, motorbike parts, a box around two faces) 0.00-0.58.
- Candidates from the rotated passes (a still is also searched turned by quarter turns, for faces
  lying sideways or upside down) see much clutter: they need detector score ``MIN_SCORE_ROTATED``
  and the first fit's presence ``MIN_PRESENCE`` as well (rotated false candidates scored 0.55-0.72).
- ``MIN_BOX_AGREEMENT``: the mesh's extent overlaps the detector's box with IoU ≥ 0.4 (real faces
  0.70-0.90), both cut to the frame; a mesh that wandered off its box fitted something else.
- A detection the detector doubts (score under ``DOUBTED_SCORE``) needs more: a mesh that fills its box
  (IoU ≥ ``DOUBTED_MIN_AGREEMENT``, ``DOUBTED_MIN_AGREEMENT_CUT`` for a box cut by the border, whose mesh
  and box agree less: the mesh's hidden half is a guess) and a first fit, on the detector's own alignment, that sees a face too
  (presence ≥ ``DOUBTED_MIN_FIRST``; the refit alone may rescue only a confident detection). Animal faces
  and a rocket's painted nose pass the presence check on some crops and scales (a cat's face 0.99 on a crop
  of scikit-image's chelsea, 0.70 at twice its size): all with detector scores 0.60-0.73, and either boxes
  their mesh fills poorly (IoU 0.51-0.62) or a first fit that saw nothing (a dog's face: 0.00, refit 0.62).
  Every real face of the development photos scores 0.75 or more; the real faces scored lower (a dim stage
  clip) fill their box with IoU 0.73-0.90, first fits 0.59-1.00; faces cut in half by the border 0.61-0.77.
- ``MAX_DRIFT``: refitting on the first fit's own alignment moves the landmarks by at most 0.18
  inter-ocular distances on average (real faces ≤ 0.12; a gloved hand that passed the presence
  check moved 0.2, other non-faces up to 0.67).

Boxes of one face (a detector's nested or shifted boxes, or the same face found in two rotated
passes) collapse to the best verified one: two boxes are one face when the smaller lies mostly
(``SAME_FACE_CONTAINMENT``) inside the larger, or their IoU is ``SAME_FACE_IOU`` or more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from swapface.faces.face import Face
from swapface.faces.tracker import box_iou

if TYPE_CHECKING:
    from swapface.faces.mediapipe import MeshFit

MIN_PRESENCE = 0.6
MIN_SCORE_FOR_MIRROR = 0.7
MIN_MIRRORED_PRESENCE = 0.9
MIN_SCORE_ROTATED = 0.75
MIN_BOX_AGREEMENT = 0.4
DOUBTED_SCORE = 0.75
DOUBTED_MIN_AGREEMENT = 0.68
DOUBTED_MIN_AGREEMENT_CUT = 0.6
DOUBTED_MIN_FIRST = 0.5
MAX_DRIFT = 0.18
SAME_FACE_CONTAINMENT = 0.6
SAME_FACE_IOU = 0.4
CONFIDENCE_DRIFT_SCALE = 0.15  # drift (IOD) at which landmark confidence falls to 1/e of the presence score

# A source photo's face must also be usable: large enough, not too turned, mostly inside the photo.
MIN_SOURCE_WIDTH = 12.0  # pixels between the mesh's outermost points (the renderer warns below 80 px itself)
MAX_SOURCE_YAW = 60.0  # degrees
MIN_SOURCE_INSIDE = 0.9  # fraction of the mesh's landmarks inside the photo


@dataclass(frozen=True)
class Rejection:
    """A detector candidate that was not kept, with the reason in words (for users and face_debugger).

    ``face_like``: its mesh saw a face there all the same (the presence check passed): a face the pass saw
    badly, lying sideways or upside down perhaps."""

    box: np.ndarray
    score: float
    reason: str
    face_like: bool = False


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """How much of the smaller of two boxes lies inside the other (0..1)."""
    smaller = min(_area(a), _area(b))
    return float(_intersection(a, b) / smaller) if smaller > 0 else 0.0


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two boxes are taken for one face (nested, or mostly overlapping)."""
    return box_iou(a, b) >= SAME_FACE_IOU or containment(a, b) >= SAME_FACE_CONTAINMENT


def _area(box: np.ndarray) -> float:
    return max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    w = min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0]))
    h = min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1]))
    return max(w, 0.0) * max(h, 0.0)


def landmark_confidence(presence: float, drift: float) -> float:
    """Trust in a mesh (0..1): its presence score, lowered the more a refit moved its landmarks."""
    return float(presence * math.exp(-drift / CONFIDENCE_DRIFT_SCALE))


def clip_to_frame(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A box cut to the frame (what of it can be seen)."""
    h, w = shape[:2]
    return np.clip(np.asarray(box, np.float32), 0, [w, h, w, h]).astype(np.float32)


def judge(candidate: Face, fit: MeshFit, shape: tuple[int, ...], rotated: bool = False) -> str | None:
    """Why a candidate is not a face, or None when its refined mesh confirms it (``shape``: the frame's)."""
    presence = trusted_presence(candidate, fit)
    if presence < MIN_PRESENCE:
        return f"not a face: mesh presence {presence:.2f} < {MIN_PRESENCE:.2f}"
    if rotated and (candidate.score < MIN_SCORE_ROTATED or fit.first_presence < MIN_PRESENCE):
        return (f"not a face: rotated-pass candidate (detector {candidate.score:.2f}, first fit "
                f"{fit.first_presence:.2f}) below {MIN_SCORE_ROTATED:.2f} / {MIN_PRESENCE:.2f}")
    seen = clip_to_frame(candidate.box, shape)
    agreement = box_iou(seen, clip_to_frame(fit.face.box, shape))
    if agreement < MIN_BOX_AGREEMENT:
        return f"mesh disagrees with the box: IoU {agreement:.2f} < {MIN_BOX_AGREEMENT:.2f}"
    if candidate.score < DOUBTED_SCORE:
        cut = not np.array_equal(seen, np.asarray(candidate.box, np.float32))
        wanted = DOUBTED_MIN_AGREEMENT_CUT if cut else DOUBTED_MIN_AGREEMENT
        if agreement < wanted:
            return f"doubted detection (score {candidate.score:.2f}) that its mesh does not fill: IoU {agreement:.2f} < {wanted:.2f}"
        if fit.first_presence < DOUBTED_MIN_FIRST:
            return (f"doubted detection (score {candidate.score:.2f}) that only the refit took for a face: first fit "
                    f"{fit.first_presence:.2f} < {DOUBTED_MIN_FIRST:.2f}")
    if fit.drift > MAX_DRIFT:
        return f"unstable mesh: refit moved landmarks {fit.drift:.2f} IOD > {MAX_DRIFT:.2f}"
    return None


def trusted_presence(candidate: Face, fit: MeshFit) -> float:
    """The presence score a verified face is credited with (the mirrored one where it counted)."""
    mirror_counts = fit.mirrored_presence >= MIN_MIRRORED_PRESENCE and candidate.score >= MIN_SCORE_FOR_MIRROR
    if mirror_counts and fit.mirrored_presence > fit.presence:
        return fit.mirrored_presence
    return fit.presence


def collapse(faces: list[Face]) -> tuple[list[Face], list[Rejection]]:
    """One face per person: of boxes that are one face, the most trusted (tracked faces first) stays."""

    def rank(face: Face) -> tuple[bool, float, float]:
        return (face.track_id is None, -(face.landmark_confidence or 0.0) - face.score, -face.area)

    kept: list[Face] = []
    dropped: list[Rejection] = []
    for face in sorted(faces, key=rank):
        twin = next((k for k in kept if same_face(face.box, k.box)), None)
        if twin is None:
            kept.append(face)
        else:
            dropped.append(Rejection(face.box, face.score, "duplicate of a better box of the same face"))
    return kept, dropped


def source_problem(face: Face, shape: tuple[int, ...]) -> str | None:
    """Why a verified face cannot serve as a source photo's face (too small, too turned, cut off), or None."""
    if face.width < MIN_SOURCE_WIDTH:
        return f"the face is too small ({face.width:.0f} px wide, needs {MIN_SOURCE_WIDTH:.0f})"
    pose = face.pose
    if pose is not None and abs(pose.yaw) > MAX_SOURCE_YAW:
        return f"the face is too turned ({abs(pose.yaw):.0f}° from frontal, at most {MAX_SOURCE_YAW:.0f})"
    if face.landmarks is not None:
        h, w = shape[:2]
        pts = face.landmarks
        inside = float(np.mean((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)))
        if inside < MIN_SOURCE_INSIDE:
            return f"the face is cut off by the border ({100 * (1 - inside):.0f} % outside the photo)"
    return None
