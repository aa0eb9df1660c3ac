"""Face analysis: detect → mesh landmarks → identity, for stills and (tracked, smoothed) for video."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.faces.flow import follow as follow_points
from swapface.faces.interfaces import FaceDetector, FaceEmbedder, FaceLandmarker
from swapface.faces.registry import build_detector, build_embedder
from swapface.faces.tracker import FaceTracker
from swapface.faces.verification import (
    MIN_PRESENCE,
    MIN_SCORE_FOR_MIRROR,
    MIN_SCORE_ROTATED,
    Rejection,
    collapse,
    judge,
    landmark_confidence,
    same_face,
    trusted_presence,
)


@dataclass(frozen=True)
class Analysis:
    """The faces kept in an image, and the candidates rejected with their reasons."""

    faces: list[Face]
    rejected: list[Rejection] = field(default_factory=list)


def unrotate(face: Face, quarter_turns: int, shape: tuple[int, ...]) -> Face:
    """A face found in ``np.rot90(image, quarter_turns)`` in the image's own coordinates."""
    if quarter_turns % 4 == 0:
        return face
    h, w = shape[:2]

    def back(points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, np.float32).reshape(-1, 2)
        x, y = pts[:, 0], pts[:, 1]
        k = quarter_turns % 4
        if k == 1:
            out = np.stack([w - y, x], 1)
        elif k == 2:
            out = np.stack([w - x, h - y], 1)
        else:
            out = np.stack([y, h - x], 1)
        return out.astype(np.float32)

    corners = back(np.array([[face.box[0], face.box[1]], [face.box[2], face.box[3]]]))
    box = np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)
    return face.with_(box=box, keypoints=back(face.keypoints))


def squeeze_box(box: np.ndarray, stretch: float) -> np.ndarray:
    """A box found on a copy stretched horizontally by ``stretch``, in the image's own coordinates."""
    return (np.asarray(box, np.float32) / np.array([stretch, 1, stretch, 1], np.float32)).astype(np.float32)


def map_face(face: Face, scale: tuple[float, float], shift: tuple[float, float] = (0.0, 0.0)) -> Face:
    """A face with every point and box moved by ``p · scale + shift`` (per axis): from a scaled, stretched or
    cropped copy of an image back into the image."""
    s, t = np.array(scale, np.float32), np.array(shift, np.float32)

    def points(p: np.ndarray | None) -> np.ndarray | None:
        return None if p is None else (np.asarray(p, np.float32) * s + t).astype(np.float32)

    def box(b: np.ndarray | None) -> np.ndarray | None:
        return None if b is None else (np.asarray(b, np.float32) * np.tile(s, 2) + np.tile(t, 2)).astype(np.float32)

    return face.with_(box=box(face.box), keypoints=points(face.keypoints), landmarks=points(face.landmarks),
                      detector_keypoints=points(face.detector_keypoints), detector_box=box(face.detector_box))


def squeeze(face: Face, stretch: float) -> Face:
    """A face found on a copy stretched horizontally by ``stretch``, in the image's own coordinates."""
    return map_face(face, (1 / stretch, 1.0))


def reduced(image: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """The image halved as often as its long side stays at least ``side``, and the factor it was shrunk by.

    Halving is INTER_AREA's fastest path (12 MP to 1000×750 in ~4 ms of CPU, against ~25 ms for one
    resize to an arbitrary size); an odd last row or column is left out of a halving.
    """
    factor = 1
    while max(image.shape[:2]) >= 2 * max(side, 1):
        h, w = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(image[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
        factor *= 2
    return image, factor


class FaceAnalyser:
    """Finds faces with every stage replaceable.

    Stills: full detection pyramid on the image, looking past its border (faces cut by it), then, unless
    the faces found show it the right way up, on the image turned by each of ``still_quarter_turns`` (faces
    at any roll), and on copies stretched by ``still_stretches`` (faces turned ~70°); every candidate
    verified on its refined mesh (``swapface.faces.verification``), identity. Detection runs on a copy
    reduced towards the detector's input size, the mesh on the image's own pixels. Video: a full detection every ``detect_every`` frames, and every frame while a tracked face is
    missing; in between each track's mesh is re-fitted from its last landmarks (as MediaPipe does),
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
        still_quarter_turns: tuple[int, ...] = (0, 1, 2, 3),
        border_pass: bool = True,
        optical_flow: bool = True,
        still_stretches: tuple[float, ...] = (2.0,),
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.embedder = embedder
        self.video = video
        self.need_embeddings = need_embeddings
        self.detect_every = detect_every
        self.embed_every = embed_every
        self.largest_only = largest_only
        self.still_quarter_turns = still_quarter_turns
        self.border_pass = border_pass
        self.still_stretches = still_stretches
        self.optical_flow = optical_flow
        self._previous_frame: np.ndarray | None = None
        self.tracker = FaceTracker(fps=fps)
        self._frame = 0

    @classmethod
    def from_options(cls, options: Any, *, video: bool = False, **kwargs: Any) -> FaceAnalyser:
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
        self._previous_frame = None

    def _landmark(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        return self.landmarker.landmark(frame, faces) if self.landmarker is not None else faces

    def verify(self, frame: np.ndarray, candidates: list[Face], rotated: list[bool] | None = None) -> Analysis:
        """Detector candidates checked on their refined mesh; boxes of one face collapsed to the best one.

        ``rotated`` marks candidates from a rotated detection pass, which must pass a stricter check.
        """
        fit = getattr(self.landmarker, "fit", None)
        if fit is None:  # a landmarker without presence scores: its own landmark() is the check
            kept, dupes = collapse(self._landmark(frame, candidates))
            return Analysis(kept, dupes)
        rotated = rotated or [False] * len(candidates)
        verified: list[Face] = []
        rejected: list[Rejection] = []
        for candidate, turned, result in zip(candidates, rotated, fit(frame, candidates, mirror_min_score=MIN_SCORE_FOR_MIRROR)):
            reason = judge(candidate, result, frame.shape, turned)
            if reason is None:
                confidence = landmark_confidence(trusted_presence(candidate, result), result.drift)
                verified.append(result.face.with_(landmark_confidence=confidence))
            else:
                face_like = trusted_presence(candidate, result) >= MIN_PRESENCE
                rejected.append(Rejection(candidate.box, candidate.score, reason, face_like))
        kept, dupes = collapse(verified)
        return Analysis(kept, rejected + dupes)

    def upright_candidates(self, image: np.ndarray) -> list[Face]:
        """Detector candidates of a still the right way up: the whole pyramid, and faces cut by the border."""
        if self.border_pass and getattr(self.detector, "accepts_past_border", False):
            return self.detector.detect(image, past_border=True, **self._still_passes())  # type: ignore[call-arg]
        found = self.detector.detect(image, **self._still_passes())
        return found + self._detect_past_border(image) if self.border_pass else found

    def rotated_candidates(self, image: np.ndarray) -> list[Face]:
        """Confident candidates of a still turned by each of its other ``still_quarter_turns`` (a photo lying
        sideways or upside down shows large faces, see verification), in the image's coordinates."""
        out: list[Face] = []
        for quarter_turns in (q for q in self.still_quarter_turns if q % 4):
            turned = cv2.rotate(image, _QUARTER_TURNS[quarter_turns % 4])
            sideways = self._detect_at_least(turned, ROTATED_MIN_FACE * min(image.shape[:2]), still=True)
            out += [unrotate(f, quarter_turns, image.shape) for f in sideways if f.score >= MIN_SCORE_ROTATED]
        return out

    def _detect_past_border(self, image: np.ndarray) -> list[Face]:
        """Faces whose centre lies outside the image (cut by its border): detection on a black-framed copy.

        The detector only proposes faces centred inside its input; framing the image by
        ``BORDER_MARGIN`` of its long side on each side lets it see half faces at the edges. The copy is
        scaled down to ``BORDER_PASS_SIZE`` (such faces are large), so the pass is cheap.
        """
        h, w = image.shape[:2]
        margin = round(BORDER_MARGIN * max(h, w))
        scale = min(1.0, BORDER_PASS_SIZE / (max(h, w) + 2 * margin))
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        pad = round(margin * scale)
        framed = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        out = []
        for face in self.detector.detect(framed):
            face = map_face(face, (1 / scale, 1 / scale), (-pad / scale, -pad / scale))
            box = face.box
            if box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h:  # only faces the border cuts
                out.append(face)
        return out

    def _verify_stretched(self, image: np.ndarray, work: np.ndarray, factor: int, found: list[Face]) -> Analysis:
        """Faces squeezed by a strong turn (~60-75° yaw), found and verified on a horizontally stretched copy.

        Foreshortening makes a turned face narrow; neither the detector nor the mesh (which aligns its crop by
        a similarity) takes a face half as wide as tall for one. On a copy stretched by each of
        ``still_stretches`` it looks like a frontal face to both; its faces are mapped back to the image.
        Only large, confident candidates count (as on rotated passes), and only where no face was found.
        Detection runs on ``work`` (the image reduced by ``factor``); each candidate is verified on a
        stretched copy of only its own surroundings in ``image``, at full resolution.
        """
        faces: list[Face] = []
        rejected: list[Rejection] = []
        h, w = work.shape[:2]
        side = getattr(self.detector, "input_side", None)
        for stretch in self.still_stretches:
            # the stretched copy made at once at the size the detector shrinks it to
            shrink = min(1.0, side / max(w * stretch, h)) if side else 1.0
            size = (max(1, round(w * stretch * shrink)), max(1, round(h * shrink)))
            wide = cv2.resize(work, size, interpolation=cv2.INTER_AREA if shrink < 1 else cv2.INTER_LINEAR)
            to_image = (factor * w * stretch / size[0], factor * h / size[1])  # wide pixels → stretched image pixels
            found_wide = self._detect_at_least(wide, ROTATED_MIN_FACE * min(h, w) * shrink, still=True)
            candidates = [map_face(c, to_image) for c in found_wide if c.score >= MIN_SCORE_ROTATED]
            for candidate in candidates:
                if any(same_face(squeeze_box(candidate.box, stretch), k.box) for k in found + faces):
                    continue  # a face the upright passes already explain
                result = self._verify_stretched_one(image, candidate, stretch)
                faces += [f for f in result.faces if all(not same_face(f.box, k.box) for k in found + faces)]
                rejected += result.rejected
        return Analysis(faces, rejected)

    def _verify_stretched_one(self, image: np.ndarray, candidate: Face, stretch: float) -> Analysis:
        """One candidate of a stretched pass (in stretched image coordinates) verified on a stretched crop of
        its surroundings (``STRETCH_CROP_MARGIN`` of its size on each side); the result in image coordinates."""
        h, w = image.shape[:2]
        grow = STRETCH_CROP_MARGIN * max(candidate.width, candidate.height)
        x1 = max(0, int((candidate.box[0] - grow) / stretch))
        x2 = min(w, int(np.ceil((candidate.box[2] + grow) / stretch)))
        y1, y2 = max(0, int(candidate.box[1] - grow)), min(h, int(np.ceil(candidate.box[3] + grow)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return Analysis([], [Rejection(squeeze_box(candidate.box, stretch), candidate.score, "outside the image")])
        crop = cv2.resize(image[y1:y2, x1:x2], (round((x2 - x1) * stretch), y2 - y1), interpolation=cv2.INTER_LINEAR)
        shift = (x1 * stretch, float(y1))
        local = map_face(candidate, (1.0, 1.0), (-shift[0], -shift[1]))
        result = self.verify(crop, [local], [True])
        back = [map_face(f, (1 / stretch, 1.0), (x1, y1)) for f in result.faces]
        return Analysis(back, [Rejection(squeeze_box(candidate.box, stretch), r.score, r.reason) for r in result.rejected])

    def _verify_upright_then_rotated(self, image: np.ndarray, work: np.ndarray, factor: int) -> Analysis:
        """Verified faces of the upright passes, then of the rotated ones where those are still needed.

        A photo is searched turned unless the upright passes show it the right way up: they verified faces of
        the size rotated passes look for (``ROTATED_MIN_FACE`` of the short side), every one of them is
        level within ``LEVEL_ROLL`` and confident, and they rejected nothing the mesh took for a face (the
        upright passes see rolls to about 45° themselves; a face they find rolled further, doubt, or fit so
        badly that it is rejected, may fit better turned). The cost: in a photo the right way
        up, a large face lying sideways that the upright passes miss altogether is not looked for.
        """
        scaled = (float(factor), float(factor))
        first = self.verify(image, [map_face(c, scaled) for c in self.upright_candidates(work)])
        large = [f for f in first.faces if min(f.width, f.height) >= ROTATED_MIN_FACE * min(image.shape[:2])]
        if large and all(_shows_upright(f) for f in large) and not any(r.face_like for r in first.rejected):
            return first
        turned = [map_face(c, scaled) for c in self.rotated_candidates(work)]
        second = self.verify(image, turned, [True] * len(turned))
        kept, dupes = collapse(first.faces + second.faces)
        return Analysis(kept, first.rejected + second.rejected + dupes)

    def _still_verified(self, image: np.ndarray) -> Analysis:
        """The verified faces of a still from every pass (upright, past the border, rotated, stretched).

        The detection passes run on a copy reduced towards the detector's own input size (they would shrink
        the image anyway); only the mesh fits read the image's own pixels.
        """
        side = getattr(self.detector, "input_side", None)
        work, factor = reduced(image, int(side)) if side else (image, 1)
        result = self._verify_upright_then_rotated(image, work, factor)
        if not self.still_stretches:
            return result
        turned = self._verify_stretched(image, work, factor, result.faces)
        return Analysis(result.faces + turned.faces, result.rejected + turned.rejected)

    def analyse_still_detailed(self, image: np.ndarray) -> Analysis:
        """Every verified face of an image (landmarks, identity, largest first) and the rejected candidates."""
        result = self._still_verified(image)
        faces = result.faces
        if self.embedder is not None:
            faces = self.embedder.embed(image, faces)
        return Analysis(sorted(faces, key=lambda f: -f.area), result.rejected)

    def analyse_still(self, image: np.ndarray) -> list[Face]:
        """Every verified face of an image, with landmarks and identity, largest first."""
        return self.analyse_still_detailed(image).faces

    def analyse(self, frame: np.ndarray) -> list[Face]:
        """Faces of one frame: a still analysis for images, tracked and smoothed faces for video."""
        if not self.video:
            faces = self._still_verified(frame).faces
            if self.need_embeddings and self.embedder is not None:
                faces = self.embedder.embed(frame, faces)
            return sorted(faces, key=lambda f: -f.area)
        index = self._frame
        self._frame += 1
        # re-fit every live track from its previous landmarks, then look for new faces now and then
        carried = [t.face.with_(track_id=t.track_id) for t in self.tracker.tracks if t.lost <= 2]
        faces = self._landmark(frame, carried) if carried else []
        # new faces are looked for every few frames; a person who went missing (hidden, turned away) is looked for
        # every frame around where they were last seen, so a face that reappears is swapped from its first frame back;
        # with no face to follow, the frames between look for faces of at least ``BETWEEN_MIN_FACE`` of the frame, so
        # one that comes into view that large is swapped from its first frame (a smaller one from the next whole
        # search; after a cut, every face from its first frame): the whole search on every faceless frame cost a
        # clip's stretches without a face (profiles, an empty stage) 35-54 ms a frame
        fresh: list[Face] | None = None
        lost = [t.face for t in self.tracker.tracks if t.lost > 0]
        if index % self.detect_every == 0 or (not faces and not (self._skips_passes and self._same_scene(frame))):
            fresh = self._largest_first(frame) if not faces else []
            if not fresh or self._passes_left(frame, fresh):
                fresh += self.verify(frame, _untracked(self._redetect(frame, faces + fresh), faces + fresh)).faces
        elif not faces:
            fresh = self.verify(frame, self._larger_faces(frame) + self._look_again(frame, lost)).faces
        elif lost:
            fresh = self.verify(frame, _untracked(self._look_again(frame, lost), faces)).faces
        if fresh is not None:
            faces, _ = collapse(faces + fresh)
        if self.need_embeddings and self.embedder is not None:
            faces = self._embed_some(frame, faces, index)
        previous = self._previous_frame
        follow = None
        if self.optical_flow and previous is not None and previous.shape == frame.shape:
            follow = partial(follow_points, previous, frame)
        self._previous_frame = frame
        seen = self.tracker.update(faces, follow, getattr(self.embedder, "match_distance", None))
        out = []
        for track in seen:
            face = track.face
            if face.embedding is None and track.embedding is not None:
                face = face.with_(embedding=track.embedding)
            out.append(face)
        return sorted(out, key=lambda f: -f.area)

    def _same_scene(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` continues the previous frame's shot: their 32 × 18 grey thumbnails differ by at most
        ``SCENE_CUT`` grey levels on average (the cuts of the clips looked at changed them by 26-81, the motion within
        a shot by at most 19)."""
        previous = self._previous_frame
        if previous is None or previous.shape != frame.shape:
            return False
        thumbs = [cv2.resize(cv2.cvtColor(cv2.resize(f, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY),
                             (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32) for f in (previous, frame)]
        return float(cv2.absdiff(thumbs[0], thumbs[1]).mean()) <= SCENE_CUT

    @property
    def _skips_passes(self) -> bool:
        """Whether the detector can leave out its passes for faces narrower than wanted (its ``min_size``)."""
        return bool(getattr(self.detector, "accepts_min_size", False))

    def _larger_faces(self, frame: np.ndarray) -> list[Face]:
        """Detector candidates at least ``BETWEEN_MIN_FACE`` of the frame's long side wide: its costliest pass, for
        smaller faces, left out (at 720p this costs 16 of the whole search's 57 CPU ms)."""
        return self._detect_at_least(frame, BETWEEN_MIN_FACE * max(frame.shape[:2]))

    def _largest_first(self, frame: np.ndarray) -> list[Face]:
        """With no face to follow (a stream's first frame) and only the largest face wanted: the detector's
        cheapest pass alone, verified. Faces it finds bound the passes still needed (as tracked faces do in
        :meth:`_redetect`), so a camera's first frame skips the costly passes for small faces."""
        if not (self.largest_only and self._skips_passes):
            return []
        coarse = self.detector.detect(frame, min_size=float("inf"))  # type: ignore[call-arg]
        return self.verify(frame, coarse).faces if coarse else []

    def _passes_left(self, frame: np.ndarray, found: list[Face]) -> bool:
        """Whether detection passes beyond the cheapest one could still find a face to choose, ``found`` known."""
        passes = getattr(self.detector, "passes", None)
        if passes is None:
            return True
        widest = max(float(f.box[2] - f.box[0]) for f in found)
        return len(passes(*frame.shape[:2], min_size=widest / 2)) > 1

    def _redetect(self, frame: np.ndarray, tracked: list[Face]) -> list[Face]:
        """Detection on a video frame; only faces that could be chosen when just the largest one is swapped."""
        if not (self.largest_only and tracked and self._skips_passes):
            return self.detector.detect(frame)
        widest = max(float(f.box[2] - f.box[0]) for f in tracked)
        return self.detector.detect(frame, min_size=widest / 2)  # type: ignore[call-arg]

    def _detect_at_least(self, image: np.ndarray, min_size: float, still: bool = False) -> list[Face]:
        """Detection that skips the passes for faces narrower than ``min_size`` where the detector can (on a
        ``still``, with its passes on two threads where it can, see :meth:`_still_passes`)."""
        options = self._still_passes() if still else {}
        if self._skips_passes:
            return self.detector.detect(image, min_size=min_size, **options)  # type: ignore[call-arg]
        return self.detector.detect(image, **options)

    def _still_passes(self) -> dict[str, bool]:
        """The detector's options for a still: its passes on two threads where it can (a still has the machine
        to itself; video frames do not ask, the codec's threads have the other core)."""
        return {"parallel": True} if getattr(self.detector, "accepts_parallel", False) else {}

    def _look_again(self, frame: np.ndarray, missing: list[Face]) -> list[Face]:
        """Detection around where each missing face was last seen (its box grown by ``LOOK_AGAIN_MARGIN`` box
        widths on each side), for faces of about its size: a fraction of a whole-frame detection's cost."""
        h, w = frame.shape[:2]
        out: list[Face] = []
        for face in missing:
            grow = LOOK_AGAIN_MARGIN * max(face.width, face.height)
            x1, y1 = max(0, int(face.box[0] - grow)), max(0, int(face.box[1] - grow))
            x2, y2 = min(w, int(face.box[2] + grow) + 1), min(h, int(face.box[3] + grow) + 1)
            if x2 - x1 < 16 or y2 - y1 < 16:
                continue
            found = self._detect_at_least(np.ascontiguousarray(frame[y1:y2, x1:x2]), face.width / 2)
            shift = np.array([x1, y1], np.float32)
            out += [f.with_(box=(f.box + np.tile(shift, 2)).astype(np.float32), keypoints=(f.keypoints + shift).astype(np.float32))
                    for f in found]
        return out

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


ROTATED_MIN_FACE = 0.08  # rotated passes look for faces at least this share of the image's short side
LEVEL_ROLL = 30.0  # degrees: a large verified face rolled less than this shows a still the right way up
BORDER_MARGIN = 0.25  # black frame around a still for faces cut by its border, in long sides
BORDER_PASS_SIZE = 512  # long side (pixels) the framed copy is scaled down to
STRETCH_CROP_MARGIN = 1.0  # a stretched-pass candidate is verified on a crop this many of its sizes larger on each side
_QUARTER_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}  # as np.rot90
BETWEEN_MIN_FACE = 0.06  # share of a frame's long side: the narrowest face looked for between whole searches
SCENE_CUT = 20.0  # mean grey-level change of a frame's 32 × 18 thumbnail from the last one's beyond which it is a cut
LOOK_AGAIN_MARGIN = 1.0  # a missing face is looked for within this many of its box sizes of where it was last seen
TRACKED_IOU = 0.6  # a detection overlapping a tracked face this much is that face (its mesh would be deduped)


def _shows_upright(face: Face) -> bool:
    """Whether a face shows its image the right way up: eyes level within ``LEVEL_ROLL``, and as confident as
    a rotated pass demands (an upside-down face can pass as a doubtful upright one)."""
    dx, dy = (face.keypoints[1] - face.keypoints[0]).tolist()
    level = abs(np.degrees(np.arctan2(dy, dx))) <= LEVEL_ROLL
    return level and face.score >= MIN_SCORE_ROTATED and (face.landmark_confidence or 0.0) >= MIN_PRESENCE


def _untracked(detected: list[Face], tracked: list[Face]) -> list[Face]:
    """Detections that are not one of the tracked faces, so only new faces pay for a mesh fit."""
    from swapface.faces.tracker import box_iou

    return [d for d in detected if all(box_iou(d.box, t.box) < TRACKED_IOU for t in tracked)]
