"""One live stream's engine: a camera frame in, the swapped frame out, options and source changeable between frames.

Analysis models are built once (shared by every stream of a process) and a source photo is analysed
once per process (remembered by content: an option change, a restarted stream or another session with the
same photo reuse it); an option change builds a new, model-free pipeline around them and applies from the
next frame.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapface.errors import InputError
from swapface.faces.analyser import Analysis, FaceAnalyser
from swapface.faces.interfaces import FaceDetector, FaceEmbedder, FaceLandmarker
from swapface.options import SwapOptions, parse_options
from swapface.pipeline import FrameEvent, Pipeline

# Options that load models or shape the analysis: chosen when a stream starts, fixed while it runs.
FIXED_WHILE_LIVE = frozenset({
    "processors", "face_swapper_model", "face_swapper_pixel_boost", "face_enhancer_model", "frame_enhancer_model",
    "face_detector_model", "face_detector_score", "face_recognizer_model", "face_mask_types", "face_mask_regions",
    "face_mask_areas", "execution_providers", "execution_device_ids", "execution_batch_size", "execution_precision",
})
# Options about files and clips: a live stream has neither, so setting them is refused rather than ignored.
NOT_LIVE = frozenset({
    "reference_face_distance", "output_image_quality", "output_video_encoder", "output_video_quality",
    "output_video_preset", "output_video_fps", "output_video_resolution", "trim_frame_start", "trim_frame_end",
    "skip_audio", "chunk_seconds", "mark_output",
})
# The product's own swapper (mesh3d, about 14 ms a face at 640x480) keeps 30 frames/s of one face on two cores; the plain
# mesh warp (about 3 ms) keeps the source's light and colour, so it is only for sessions that ask for it.
LIVE_DEFAULTS: dict[str, Any] = {"label_output": True}
WARM_SIZES = ((480, 640), (720, 1280))  # camera frame shapes the detector is run on once, before any stream
SOURCES_KEPT = 16  # source photo analyses a process remembers


def live_options(values: dict[str, Any], current: SwapOptions | None = None) -> SwapOptions:
    """Options for a live stream: the live defaults (visible label), then ``values``; refuses what cannot apply live."""
    named = sorted(set(values) & NOT_LIVE)
    if named:
        raise InputError(f"option(s) {', '.join(named)} do not apply to a live stream", code="bad_option")
    if current is not None:
        changed = sorted(k for k in set(values) & FIXED_WHILE_LIVE if values[k] != _json(getattr(current, k)))
        if changed:
            raise InputError(f"option(s) {', '.join(changed)} cannot change while live: stop and start again",
                             code="fixed_while_live")
    base = LIVE_DEFAULTS if current is None else current.model_dump(exclude_defaults=True)
    options = parse_options({**base, **values})
    if options.face_selector_mode == "reference":
        raise InputError("face selector mode 'reference' is not available live; use one or many", code="bad_option")
    return options


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class AnalysisModels:
    """The model-holding parts of face analysis, shared by every live stream that uses the same ones.

    Per-frame analysis may run from several streams at once (ONNX Runtime sessions allow it); source photos,
    which also use the identity embedder, are analysed one at a time (``stills_lock``) and remembered."""

    detector: FaceDetector
    landmarker: FaceLandmarker
    embedder: FaceEmbedder | None
    stills_lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)
    stills: OrderedDict[bytes, Analysis] = field(default_factory=OrderedDict, compare=False, repr=False)

    @classmethod
    def for_options(cls, options: SwapOptions) -> AnalysisModels:
        """Build the detector, mesh and embedder the options name, and run the detector on the usual camera sizes."""
        from swapface.faces.mediapipe import MeshLandmarker
        from swapface.faces.registry import build_detector, build_embedder

        models = cls(build_detector(options.face_detector_model, options), MeshLandmarker(),
                     build_embedder(options.face_recognizer_model, options))
        for height, width in WARM_SIZES:  # the detector's input follows the frame's shape: first runs are slow
            models.detector.detect(np.zeros((height, width, 3), np.uint8))
        return models

    def remembered(self, image: np.ndarray, analyse: Callable[[np.ndarray], Analysis]) -> Analysis:
        """The still analysis of ``image``, from memory when a photo with the same pixels was analysed before."""
        digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=20)
        digest.update(repr(image.shape).encode())
        key = digest.digest()
        with self.stills_lock:
            found = self.stills.get(key)
            if found is None:
                found = self.stills[key] = analyse(image)
                while len(self.stills) > SOURCES_KEPT:
                    self.stills.popitem(last=False)
            self.stills.move_to_end(key)
            return found

    @staticmethod
    def key(options: SwapOptions) -> tuple:
        """What decides which models a stream needs (streams with equal keys share them)."""
        return (options.face_detector_model, options.face_detector_score, options.face_recognizer_model)


class _SourceRemembered(FaceAnalyser):
    """A tracking analyser whose still analyses (the source photo) come from the shared models' memory."""

    def __init__(self, models: AnalysisModels, **kwargs: Any) -> None:
        super().__init__(models.detector, models.landmarker, models.embedder, video=True, **kwargs)
        self._models = models

    def analyse_still_detailed(self, image: np.ndarray) -> Analysis:
        return self._models.remembered(image, super().analyse_still_detailed)


class LiveEngine:
    """Swaps the frames of one stream in order; :meth:`set_options` / :meth:`set_source` apply from the next frame.

    ``process`` is called by one thread at a time (frames in order); the setters may be called from any thread.
    """

    def __init__(self, source: np.ndarray, options: SwapOptions, models: AnalysisModels) -> None:
        self.models = models
        self._source = source
        self._pipeline = self._build(source, options)

    @property
    def options(self) -> SwapOptions:
        return self._pipeline.options

    def _build(self, source: np.ndarray, options: SwapOptions) -> Pipeline:
        analyser = _SourceRemembered(self.models, need_embeddings=False, largest_only=options.face_selector_mode == "one")
        with self.models.stills_lock:
            pipeline = Pipeline([source], options, analyser=analyser, video=True)
        # warm the processors (the renderer's source mesh) here, not on the first camera frame: the source's own
        # face swapped into the source photo (no detection: the still analysis found it, the detector is warm)
        faces = list(pipeline.source.faces) if pipeline.source is not None else []
        pipeline.render_frame(FrameEvent(index=0, frame=source, faces=faces, targets=pipeline.select(faces)))
        pipeline.reset()
        return pipeline

    def set_options(self, values: dict[str, Any]) -> SwapOptions:
        """Change options live (refusing those that cannot change); returns the options now in force."""
        options = live_options(values, self._pipeline.options)
        self._pipeline = self._build(self._source, options)
        return options

    def set_source(self, source: np.ndarray) -> None:
        """Swap a different person in from the next frame; InputError (``no_face_in_source``) leaves the old one."""
        pipeline = self._build(source, self._pipeline.options)
        self._source, self._pipeline = source, pipeline

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The swapped frame (RGB); a frame without a face comes back unchanged (bar the label, when on)."""
        return self._pipeline.process_frame(frame)

    def analyse(self, frame: np.ndarray) -> tuple[Pipeline, FrameEvent]:
        """The first half of :meth:`process` (frames in order, one at a time); render the event with the pipeline
        returned (the one in force when it was analysed), possibly while the next frame is being analysed."""
        pipeline = self._pipeline
        return pipeline, pipeline.analyse_frame(frame)
