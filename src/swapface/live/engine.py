"""One live stream's engine: a camera frame in, the swapped frame out, options and source changeable between frames.

Analysis models are built once (shared by every stream of a process) and the source photo is analysed
once; an option change builds a new, model-free pipeline around them and applies from the next frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapface.errors import InputError
from swapface.faces.analyser import FaceAnalyser
from swapface.faces.face import Face
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
LIVE_DEFAULTS: dict[str, Any] = {"label_output": True}
WARM_SIZES = ((480, 640), (720, 1280))  # camera frame shapes the detector is run on once, before any stream  # live output carries the visible label unless turned off


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
    which also use the identity embedder, are analysed one at a time (``stills_lock``)."""

    detector: FaceDetector
    landmarker: FaceLandmarker
    embedder: FaceEmbedder | None
    stills_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

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

    @staticmethod
    def key(options: SwapOptions) -> tuple:
        """What decides which models a stream needs (streams with equal keys share them)."""
        return (options.face_detector_model, options.face_detector_score, options.face_recognizer_model)


class _SourceRemembered(FaceAnalyser):
    """A tracking analyser that analyses each still (the source photo) only once across pipelines."""

    def __init__(self, models: AnalysisModels, stills: dict[int, tuple[np.ndarray, list[Face]]], **kwargs: Any) -> None:
        super().__init__(models.detector, models.landmarker, models.embedder, video=True, **kwargs)
        self._stills = stills

    def analyse_still(self, image: np.ndarray) -> list[Face]:
        remembered = self._stills.get(id(image))
        if remembered is None or remembered[0] is not image:
            remembered = (image, super().analyse_still(image))
            self._stills[id(image)] = remembered
        return remembered[1]


class LiveEngine:
    """Swaps the frames of one stream in order; :meth:`set_options` / :meth:`set_source` apply from the next frame.

    ``process`` is called by one thread at a time (frames in order); the setters may be called from any thread.
    """

    def __init__(self, source: np.ndarray, options: SwapOptions, models: AnalysisModels) -> None:
        self.models = models
        self._stills: dict[int, tuple[np.ndarray, list[Face]]] = {}
        self._source = source
        self._pipeline = self._build(source, options)

    @property
    def options(self) -> SwapOptions:
        return self._pipeline.options

    def _build(self, source: np.ndarray, options: SwapOptions) -> Pipeline:
        analyser = _SourceRemembered(self.models, self._stills, need_embeddings=False,
                                     largest_only=options.face_selector_mode == "one")
        with self.models.stills_lock:
            pipeline = Pipeline([source], options, analyser=analyser, video=True)
        pipeline.process_frame(source)  # warm up here (first detection, the renderer's source mesh), not on a frame
        pipeline.reset()
        return pipeline

    def set_options(self, values: dict[str, Any]) -> SwapOptions:
        """Change options live (refusing those that cannot change); returns the options now in force."""
        options = live_options(values, self._pipeline.options)
        self._pipeline = self._build(self._source, options)
        return options

    def set_source(self, source: np.ndarray) -> None:
        """Swap a different person in from the next frame; InputError (``no_face_in_source``) leaves the old one."""
        stills: dict[int, tuple[np.ndarray, list[Face]]] = {}
        previous, self._stills = self._stills, stills
        try:
            pipeline = self._build(source, self._pipeline.options)
        except BaseException:
            self._stills = previous
            raise
        self._source, self._pipeline = source, pipeline

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The swapped frame (RGB); a frame without a face comes back unchanged (bar the label, when on)."""
        return self._pipeline.process_frame(frame)

    def analyse(self, frame: np.ndarray) -> tuple[Pipeline, FrameEvent]:
        """The first half of :meth:`process` (frames in order, one at a time); render the event with the pipeline
        returned (the one in force when it was analysed), possibly while the next frame is being analysed."""
        pipeline = self._pipeline
        return pipeline, pipeline.analyse_frame(frame)
