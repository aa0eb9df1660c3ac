"""ONNX face swappers (hyperswap, inswapper, simswap, ghost, hififace, blendswap, uniface) driven by their contracts.

Per target face: align the detector's five points to the contract's template (at k × the model size
for pixel boost), split the crop into k² polyphase sub-images, run them all in batches with the source
input, re-interleave, mask (box and occlusion from the target crop, region from the swapped one) and
paste back. The source input is computed here from the source photos with ArcFace (the built-in
embedder's 128-d dlib vector is not what these models were trained on) and cached per source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swapface.errors import InputError, ModelError
from swapface.faces.arcface import ArcFaceEmbedder
from swapface.faces.face import Face
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype, run_batched
from swapface.models.store import require
from swapface.models.templates import from_tensor, to_tensor, warp_face
from swapface.processors.base import SourceIdentity
from swapface.processors.masks import FaceMasker, paste_back

RECOGNISER = "arcface_w600k_r50"
MAX_PIXEL_BOOST = 8  # k × the model size, k ≤ 8 (inswapper 128 → 1024 px, as FaceFusion offers)


def alignment_points(face: Face) -> np.ndarray:
    """The five points neural models align on: the detector's own (the models were trained on detector-aligned
    crops), else the face's keypoints."""
    return face.detector_keypoints if face.detector_keypoints is not None else face.keypoints


class NeuralAligner:
    """The points a neural model aligns a face on: the detector's, refined by 68 landmarks when asked
    (``face_landmarker_model=2dfan4``, FaceFusion's ``5/68`` points); and the face's 68 landmarks for the
    ``area`` mask (2DFAN4's, or the built-in dlib predictor's on the same box when no landmarker is chosen)."""

    def __init__(self, options: Any, models_dir: Path | None = None) -> None:
        name = str(getattr(options, "face_landmarker_model", "none") or "none")
        if name not in ("none", "2dfan4"):
            raise InputError(f"unknown face landmarker {name!r}; choose from none, 2dfan4")
        from swapface.faces.landmark68 import Landmarker68

        self.landmarker = Landmarker68(name, options, models_dir) if name != "none" else None
        self._fallback68: Any = None

    @property
    def model_names(self) -> list[str]:
        return [self.landmarker.model.entry.name] if self.landmarker is not None else []

    def points(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """The five alignment points of ``face`` in ``frame``."""
        return self.align(frame, face)[0]

    def align(self, frame: np.ndarray, face: Face, with_68: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The five alignment points and, with ``with_68``, the 68 landmarks (frame pixels); one 2DFAN4 run."""
        from swapface.faces.landmark68 import refined_five

        detector = alignment_points(face)
        if self.landmarker is None:
            return detector, self._dlib68(frame, face) if with_68 else None
        points, score = self.landmarker.detect(frame, face, detector)
        return refined_five(points, score, detector), points

    def _dlib68(self, frame: np.ndarray, face: Face) -> np.ndarray:
        from swapface.faces.dlib_landmarks import Dlib68Landmarker
        from swapface.faces.landmark68 import detector_box

        if self._fallback68 is None:
            self._fallback68 = Dlib68Landmarker()
        return self._fallback68.points(frame, detector_box(face))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def polyphase_split(crop: np.ndarray, k: int) -> list[np.ndarray]:
    """The k² sub-images crop[i::k, j::k], row-major in (i, j)."""
    return [np.ascontiguousarray(crop[i::k, j::k]) for i in range(k) for j in range(k)]


def polyphase_merge(parts: Sequence[np.ndarray] | np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`polyphase_split`."""
    s = parts[0].shape[0]
    out = np.empty((s * k, s * k) + parts[0].shape[2:], parts[0].dtype)
    for n, part in enumerate(parts):
        out[n // k::k, n % k::k] = part
    return out


def load_emap(path: Path) -> np.ndarray:
    """The 512×512 embedding map stored as the swapper graph's last initializer."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    if not model.graph.initializer:
        raise ModelError(f"model file {path.name!r} has no embedding map (emap); it is not an inswapper-class model")
    emap = numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)
    if emap.shape != (512, 512):
        raise ModelError(f"model file {path.name!r}: its last initializer is {emap.shape}, not the 512×512 emap")
    return emap


class OnnxSwapper:
    """Processor ``face_swapper`` for ONNX models; ``process_batch`` batches face crops across frames."""

    name = "face_swapper"
    needs_source = True
    whole_frame = False

    def __init__(self, options: Any, models_dir: Path | None = None) -> None:
        self.model = LazyModel(options.face_swapper_model, options, models_dir, task="face_swapper")
        c = self.model.contract
        boost = max(int(options.face_swapper_pixel_boost), c.size)
        k = boost // c.size
        if boost % c.size or not 1 <= k <= MAX_PIXEL_BOOST:
            choices = ", ".join(str(c.size * i) for i in range(1, MAX_PIXEL_BOOST + 1))
            raise InputError(
                f"face swapper pixel boost {options.face_swapper_pixel_boost} does not suit {self.model.entry.name} "
                f"({c.size} px): use one of {choices}"
            )
        self.k = k
        self.weight = float(options.face_swapper_weight)
        self.batch_size = int(options.execution_batch_size)
        needs_arcface = c.embedding in ("normed", "emap", "converter")
        self.recogniser = ArcFaceEmbedder(RECOGNISER, options, models_dir) if needs_arcface else None
        self.converter = LazyModel(c.converter, options, models_dir, "embedding_converter") if c.converter else None
        self.masker = FaceMasker(options, models_dir)
        self.aligner = NeuralAligner(options, models_dir)
        self._emap: np.ndarray | None = None
        self._source: SourceIdentity | None = None
        self._latent: np.ndarray | None = None
        self._files_checked = False

    def require_files(self) -> None:
        """Fail once, up front, naming every file this swap needs that is missing (model, companions, masks)."""
        if not self._files_checked:
            require([self.model.entry.name, *self.masker.model_names, *self.aligner.model_names], self.model.models_dir)
            self._files_checked = True

    # -- source ------------------------------------------------------------------------------------
    def latent(self, raw: np.ndarray, normed: np.ndarray | None = None) -> np.ndarray:
        """The model's ``source`` input (1×512) from an ArcFace embedding, per the contract (FaceFusion's rules).

        ``raw``: the network's output (averaged over the source photos); ``normed``: the average of the
        photos' L2-normalised embeddings (defaults to ``raw`` normalised, the same for one photo).
        """
        c = self.model.contract
        raw = np.asarray(raw, np.float32).reshape(1, -1)
        normed = _unit(raw) if normed is None else np.asarray(normed, np.float32).reshape(1, -1)
        if c.embedding == "emap":  # normalised once, before the emap: raw · emap / ‖raw‖
            if self._emap is None:
                self._emap = load_emap(self.model.path)
            return (_unit(raw) @ self._emap).astype(np.float32)
        if c.embedding == "converter":
            assert self.converter is not None
            s = self.converter.session
            name = "input" if any(i.name == "input" for i in s.get_inputs()) else s.get_inputs()[0].name
            conv = s.run(None, {name: raw.astype(input_dtype(s))})[0].reshape(1, -1).astype(np.float32)
            return _unit(conv) if c.normalise_converted else conv
        return normed.astype(np.float32)

    def source_crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The source input of image-conditioned swappers (blendswap, uniface): the face's aligned crop, RGB / 255."""
        c = self.model.contract
        assert c.source_template is not None
        crop, _ = warp_face(image, self.aligner.points(image, face), c.source_template, c.source_size)
        return (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]

    def source_latent(self, source: SourceIdentity) -> np.ndarray:
        """The source input of a source person (ArcFace embeddings of every photo averaged), cached per source."""
        if self._source is not source or self._latent is None:
            if self.model.contract.embedding == "image":  # as FaceFusion: the first source photo's face
                self._latent = self.source_crop(source.images[0], source.faces[0])
            else:
                assert self.recogniser is not None
                raws = [self.recogniser.raw_embeddings(img, [self.aligner.points(img, face)])[0]
                        for img, face in zip(source.images, source.faces)]
                self._latent = self.latent(np.mean(raws, axis=0), np.mean([_unit(r) for r in raws], axis=0))
            self._source = source
        return self._latent

    # -- targets -----------------------------------------------------------------------------------
    def swap_crops(self, crops: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Swapped aligned crops (N×kS×kS×3 RGB) for target crops of k × the model size (polyphase pixel boost)."""
        c, k = self.model.contract, self.k
        parts = np.stack([p for crop in crops for p in polyphase_split(crop, k)])
        session = self.model.session
        names = {i.name: n for n, i in enumerate(session.get_inputs())}
        target = to_tensor(parts, c, input_dtype(session, names["target"]))
        src: np.ndarray = np.repeat(latent.reshape((1,) + latent.shape[1:]), len(parts), 0).astype(input_dtype(session, names["source"]))
        out = run_batched(session, {"target": target, "source": src}, self.batch_size)[0]  # output 0, as FaceFusion
        swapped = from_tensor(out, c)
        return np.stack([polyphase_merge(swapped[n * k * k:(n + 1) * k * k], k) for n in range(len(crops))])

    def process_batch(
        self, frames: Sequence[np.ndarray], faces: Sequence[list[Face]], source: SourceIdentity | None
    ) -> list[np.ndarray]:
        """Swap the given faces in several frames with one batched inference over all their crops."""
        if source is None:
            return [f.copy() for f in frames]
        self.require_files()
        c = self.model.contract
        size = c.size * self.k
        jobs: list[tuple[int, np.ndarray, np.ndarray]] = []
        landmarks: list[np.ndarray] = []  # each face's 68 points in its crop, for the area mask
        for i, (frame, frame_faces) in enumerate(zip(frames, faces)):
            for face in frame_faces:
                points, points68 = self.aligner.align(frame, face, self.masker.needs_landmarks)
                crop, affine = warp_face(frame, points, c.template, size)
                jobs.append((i, crop, affine))
                if points68 is not None:
                    landmarks.append(np.asarray(points68, np.float64) @ affine[:, :2].T + affine[:, 2])
        outs = [f.copy() for f in frames]
        if not jobs:
            return outs
        crops = np.stack([j[1] for j in jobs])
        swapped = self.swap_crops(crops, self.source_latent(source))
        target = self.masker.target_masks(crops, landmarks if self.masker.needs_landmarks else None)
        masks = np.minimum(target, self.masker.swapped_masks(swapped)) * self.weight
        for (i, _, affine), crop, mask in zip(jobs, swapped, masks):
            outs[i] = paste_back(outs[i], crop, affine, mask)
        return outs

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """Swap the source identity into the given faces of one frame."""
        return self.process_batch([frame], [faces], source)[0]


def build(options: Any) -> OnnxSwapper:
    """Factory the ``face_swapper`` processor dispatches to for every model but ``mesh``."""
    return OnnxSwapper(options)
