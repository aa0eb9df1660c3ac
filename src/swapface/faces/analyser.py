"""Face analysis: detect → mesh landmarks → identity, for stills and (tracked, smoothed) for video."""

from __future__ import annotations

from typing import Any

import numpy as np

from swapface.faces.face import Face
from swapface.faces.interfaces import FaceDetector, FaceEmbedder, FaceLandmarker
from swapface.faces.registry import build_detector, build_embedder
from swapface.faces.tracker import FaceTracker


class FaceAnalyser:
    """Finds faces with every stage replaceable.

    Stills: full detection pyramid, mesh, identity. Video: a full detection every ``detect_every``
    frames; in between each track's mesh is re-fitted from its last landmarks (as MediaPipe does),
    which is several times cheaper; identities are refreshed every ``embed_every`` frames per track.
    With ``largest_only`` (selector mode ``one``) a re-detection while faces are tracked does not look
    for faces narrower than half the largest tracked one (they could not be chosen), which skips the
    detector's costliest pass for a large face; with no face tracked the whole pyramid runs.
    """

    def __init__(
        self,
        detector: FaceDetector,
        landmarker: FaceLandmarker | None,
        embedder: FaceEmbedder | None,
        *,
        video: bool = False,
        need_embeddings: bool = True,
        detect_every: int = 6,
        embed_every: int = 30,
        fps: float = 30.0,
        largest_only: bool = False,
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.embedder = embedder
        self.video = video
        self.need_embeddings = need_embeddings
        self.detect_every = detect_every
        self.embed_every = embed_every
        self.largest_only = largest_only
        self.tracker = FaceTracker(fps=fps)
        self._frame = 0

    @classmethod
    def from_options(cls, options: Any, *, video: bool = False, **kwargs: Any) -> "FaceAnalyser":
        """The analyser the options name (detector, recogniser); embeddings only where selection needs them."""
        from swapface.faces.mediapipe import MeshLandmarker

        detector = build_detector(options.face_detector_model, options)
        embedder = build_embedder(options.face_recognizer_model, options)
        need = options.face_selector_mode == "reference"
        largest_only = options.face_selector_mode == "one"
        # neural swappers keep every face the detector scored high enough (as FaceFusion); the mesh's own
        # face-presence score gates only the mesh swapper, which needs a good mesh
        from swapface.options import BUILTIN_SWAPPERS

        presence = 0.5 if getattr(options, "face_swapper_model", "mesh") in BUILTIN_SWAPPERS else 0.0
        return cls(
            detector, MeshLandmarker(presence=presence), embedder, video=video, need_embeddings=need, largest_only=largest_only, **kwargs
        )

    def reset(self) -> None:
        """Forget tracks (a new clip begins)."""
        self.tracker.reset()
        self._frame = 0

    def _landmark(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        return self.landmarker.landmark(frame, faces) if self.landmarker is not None else faces

    def analyse_still(self, image: np.ndarray) -> list[Face]:
        """Every face of an image, with landmarks and identity, largest first."""
        faces = self._landmark(image, self.detector.detect(image))
        faces = _dedupe(faces)
        if self.embedder is not None:
            faces = self.embedder.embed(image, faces)
        return sorted(faces, key=lambda f: -f.area)

    def analyse(self, frame: np.ndarray) -> list[Face]:
        """Faces of one frame: a still analysis for images, tracked and smoothed faces for video."""
        if not self.video:
            faces = self._landmark(frame, self.detector.detect(frame))
            faces = _dedupe(faces)
            if self.need_embeddings and self.embedder is not None:
                faces = self.embedder.embed(frame, faces)
            return sorted(faces, key=lambda f: -f.area)
        index = self._frame
        self._frame += 1
        # re-fit every live track from its previous landmarks, then look for new faces now and then
        carried = [t.face.with_(track_id=t.track_id) for t in self.tracker.tracks if t.lost <= 2]
        faces = self._landmark(frame, carried) if carried else []
        if index % self.detect_every == 0 or not faces:
            fresh = self._landmark(frame, _untracked(self._redetect(frame, faces), faces))
            faces = _dedupe(faces + fresh)
        if self.need_embeddings and self.embedder is not None:
            faces = self._embed_some(frame, faces, index)
        seen = self.tracker.update(faces)
        out = []
        for track in seen:
            face = track.face
            if face.embedding is None and track.embedding is not None:
                face = face.with_(embedding=track.embedding)
            out.append(face)
        return sorted(out, key=lambda f: -f.area)

    def _redetect(self, frame: np.ndarray, tracked: list[Face]) -> list[Face]:
        """Detection on a video frame; only faces that could be chosen when just the largest one is swapped."""
        if not (self.largest_only and tracked and getattr(self.detector, "accepts_min_size", False)):
            return self.detector.detect(frame)
        widest = max(float(f.box[2] - f.box[0]) for f in tracked)
        return self.detector.detect(frame, min_size=widest / 2)  # type: ignore[call-arg]

    def _embed_some(self, frame: np.ndarray, faces: list[Face], index: int) -> list[Face]:
        """Embed only faces whose track has no recent identity (embedding is the costly stage)."""
        assert self.embedder is not None
        due = []
        for i, face in enumerate(faces):
            track = next((t for t in self.tracker.tracks if t.track_id == face.track_id), None)
            if track is None or track.embedding is None or index - track.embedded_at >= self.embed_every:
                due.append(i)
                if track is not None:
                    track.embedded_at = index
        if not due:
            return faces
        embedded = self.embedder.embed(frame, [faces[i] for i in due])
        out = list(faces)
        for i, face in zip(due, embedded):
            out[i] = face
        return out


TRACKED_IOU = 0.6  # a detection overlapping a tracked face this much is that face (its mesh would be deduped)


def _untracked(detected: list[Face], tracked: list[Face]) -> list[Face]:
    """Detections that are not one of the tracked faces, so only new faces pay for a mesh fit."""
    from swapface.faces.tracker import box_iou

    return [d for d in detected if all(box_iou(d.box, t.box) < TRACKED_IOU for t in tracked)]


def _dedupe(faces: list[Face], iou: float = 0.4) -> list[Face]:
    """One face per person: drop faces whose box mostly overlaps a larger one's (tracked faces win ties)."""
    from swapface.faces.tracker import box_iou

    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: (f.track_id is None, -f.area)):
        if all(box_iou(face.box, k.box) < iou for k in kept):
            kept.append(face)
    return kept
