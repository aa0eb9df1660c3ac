"""Face tracks across video frames: stable ids, short gaps bridged, landmarks smoothed over time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from swapface.faces.face import Face, identity_distance
from swapface.faces.flow import fuse
from swapface.faces.mediapipe import keypoints_from_mesh
from swapface.faces.smoothing import OneEuroFilter

Follow = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1,y1,x2,y2 boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One person over time: last seen face, smoothing state, identity, frames since last seen."""

    track_id: int
    face: Face
    fps: float
    lost: int = 0
    age: int = 0
    embedding: np.ndarray | None = None
    embedded_at: int = -(10**9)
    filter: OneEuroFilter = field(init=False)

    def __post_init__(self) -> None:
        self.filter = OneEuroFilter(fps=self.fps)

    def smooth(self, face: Face, follow: Follow | None = None) -> Face:
        """The face with its landmarks and keypoints filtered over time.

        With ``follow`` (optical flow from the previous frame) the previous landmarks are carried along by the
        flow and fused with the new mesh (``swapface.faces.flow``) instead: a low-pass filter on top only
        adds lag, which shows as wobble against the real face. The One Euro filter smooths a track's first
        frame after a gap and analyses without flow.
        """
        if face.landmarks is None:
            return face
        before = self.face.landmarks
        if follow is not None and self.lost == 0 and before is not None and before.shape == face.landmarks.shape:
            self.filter.reset()  # the filter restarts from here should the flow be unavailable later
            flowed, good = follow(before, max(face.interocular, 1.0))
            landmarks = fuse(flowed, good, face.landmarks)
            keypoints = keypoints_from_mesh(landmarks) if len(landmarks) == 468 else face.keypoints
            return face.with_(landmarks=landmarks, keypoints=keypoints)
        scale = max(face.interocular, 1.0)
        n = len(face.landmarks)
        both = self.filter(np.concatenate([face.landmarks, face.keypoints]), scale=scale)
        return face.with_(landmarks=both[:n], keypoints=both[n:])


class FaceTracker:
    """Assigns track ids by box overlap (and identity when both faces have one); forgets after ``max_lost`` frames."""

    def __init__(self, fps: float = 30.0, max_lost: int = 15, min_iou: float = 0.25) -> None:
        self.fps = fps
        self.max_lost = max_lost
        self.min_iou = min_iou
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 1

    def _score(self, track: Track, face: Face, identity_limit: float | None = None) -> float:
        """How well a face continues a track: box overlap, plus a bonus for the same identity. A track that was
        lost (its person hidden or gone) is continued only by a face of the same identity when both have one:
        someone else stepping into the place of a hidden person is a new track."""
        iou = box_iou(track.face.box, face.box)
        if track.embedding is not None and face.embedding is not None:
            distance = identity_distance(track.embedding, face.embedding)
            if track.lost > 0 and identity_limit is not None and distance > identity_limit:
                return -1.0
            iou += max(0.0, 0.5 - distance)
        return iou

    def update(self, faces: list[Face], follow: Follow | None = None, identity_limit: float | None = None) -> list[Track]:
        """Match this frame's faces to tracks; returns the tracks seen in this frame (smoothed faces inside).

        ``follow(points, interocular)`` carries points of the previous frame into this one (optical flow);
        ``identity_limit`` is the embedder's same-person distance (lost tracks are re-identified by it).
        """
        pairs = sorted(
            ((self._score(t, f, identity_limit), ti, fi) for ti, t in enumerate(self.tracks) for fi, f in enumerate(faces)),
            reverse=True,
        )
        used_t: set[int] = set()
        used_f: set[int] = set()
        seen: list[Track] = []
        for score, ti, fi in pairs:
            if score < self.min_iou or ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            track = self.tracks[ti]
            face = faces[fi]
            if face.embedding is not None:
                track.embedding = face.embedding
            track.face = track.smooth(face.with_(track_id=track.track_id), follow)
            track.lost = 0
            track.age += 1
            seen.append(track)
        for fi, face in enumerate(faces):
            if fi in used_f:
                continue
            track = Track(self._next_id, face.with_(track_id=self._next_id), self.fps, embedding=face.embedding)
            self._next_id += 1
            track.face = track.smooth(track.face)
            self.tracks.append(track)
            seen.append(track)
        for ti, track in enumerate(self.tracks):
            if ti not in used_t and track not in seen:
                track.lost += 1
                track.filter.reset() if track.lost > 2 else None
        self.tracks = [t for t in self.tracks if t.lost <= self.max_lost]
        return seen
