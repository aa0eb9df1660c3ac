"""The frame pipeline: analyse faces, choose targets (one / many / reference), run the processor chain.

A `Pipeline` is built once per clip (or image) and fed frames in order. It owns the per-clip state
that video needs (tracks and smoothing) and nothing global. Hooks let callers watch or veto frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from swapface.errors import InputError
from swapface.faces.analyser import FaceAnalyser
from swapface.faces.face import Face, identity_distance
from swapface.media.repeats import motion_thumbnail, repeats
from swapface.options import SwapOptions
from swapface.processors.base import FrameProcessor, SourceIdentity
from swapface.processors.registry import build_chain
from swapface.reference import order_faces


@dataclass
class FrameEvent:
    """What a hook sees: the frame's index, the frame (input for ``pre_frame``, output for ``post_frame``),
    every face found and the faces chosen as targets. A ``pre_frame`` hook may narrow ``targets`` or raise
    to stop the run (a permission check). ``repeats``: in video, the index of an earlier frame this one
    repeats (see :mod:`swapface.media.repeats`): it takes that frame's faces, and its output where there is one."""

    index: int
    frame: np.ndarray
    faces: list[Face]
    targets: list[Face]
    repeats: int | None = None


Hook = Callable[[FrameEvent], None]


@dataclass
class PipelineStats:
    """Counters a caller may show or log: frames seen, frames with a face, faces swapped."""

    frames: int = 0
    frames_with_faces: int = 0
    faces_processed: int = 0
    per_stage_seconds: dict[str, float] = field(default_factory=dict)


def scale_face(face: Face, sx: float, sy: float) -> Face:
    """A face's geometry in a frame resized by (sx, sy) (after a frame enhancer, say)."""
    k = np.array([sx, sy], np.float32)

    def points(p: np.ndarray | None) -> np.ndarray | None:
        return None if p is None else (p * k).astype(np.float32)

    return face.with_(
        box=(face.box * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32),
        keypoints=points(face.keypoints), landmarks=points(face.landmarks),
        detector_keypoints=points(face.detector_keypoints),
        detector_box=None if face.detector_box is None else (face.detector_box * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32),
        depth=None if face.depth is None else (face.depth * (sx + sy) / 2).astype(np.float32),
    )


def faces_at_scale(faces: list[Face], analysed: np.ndarray, current: np.ndarray) -> list[Face]:
    """Faces found on ``analysed`` placed on ``current``, which an earlier processor may have resized."""
    (h0, w0), (h1, w1) = analysed.shape[:2], current.shape[:2]
    if (h0, w0) == (h1, w1):
        return faces
    return [scale_face(f, w1 / w0, h1 / h0) for f in faces]


class Pipeline:
    """Swap one identity into frames.

    >>> pipe = Pipeline([source_rgb], SwapOptions(face_selector_mode="many"))
    >>> out = pipe.process_frame(target_rgb)
    """

    def __init__(
        self,
        sources: Sequence[np.ndarray],
        options: SwapOptions | None = None,
        *,
        reference: np.ndarray | None = None,
        analyser: FaceAnalyser | None = None,
        processors: Sequence[FrameProcessor] | None = None,
        pre_frame: Hook | None = None,
        post_frame: Hook | None = None,
        video: bool = False,
    ) -> None:
        self.options = options or SwapOptions()
        self.analyser = analyser or FaceAnalyser.from_options(self.options, video=video)
        self.processors = list(processors) if processors is not None else build_chain(self.options)
        self.pre_frame = pre_frame
        self.post_frame = post_frame
        self.stats = PipelineStats()
        self.source = self._source_identity(sources) if self._needs_source() else None
        self.reference_embedding = self._reference_embedding(reference)
        self.video = video
        self._index = 0
        self._anchor: tuple[np.ndarray, FrameEvent] | None = None  # the last frame analysed afresh (video)
        self._rendered: tuple[int, list[Face], np.ndarray] | None = None  # frame, targets, output: what a repeat reuses

    @classmethod
    def from_files(
        cls,
        sources: Sequence[str | Path],
        options: SwapOptions | None = None,
        *,
        reference: str | Path | None = None,
        **kwargs: object,
    ) -> "Pipeline":
        """Build a pipeline from image files (sources and optional reference face photo)."""
        from swapface.media.image import read_image

        images = [read_image(p) for p in sources]
        ref = read_image(reference) if reference is not None else None
        return cls(images, options, reference=ref, **kwargs)  # type: ignore[arg-type]

    # -- setup -------------------------------------------------------------------------------
    def _needs_source(self) -> bool:
        return any(getattr(p, "needs_source", True) for p in self.processors)

    def _source_identity(self, sources: Sequence[np.ndarray]) -> SourceIdentity:
        if not sources:
            raise InputError("no source image given: pass at least one photo of the face to put in")
        images, faces = [], []
        for number, image in enumerate(sources, start=1):
            images.append(image)
            faces.append(self._source_face(image, number))
        embeddings = [f.embedding for f in faces if f.embedding is not None]
        mean = np.mean(embeddings, axis=0) if embeddings else np.zeros(1, np.float32)
        mean = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return SourceIdentity(images=tuple(images), faces=tuple(faces), embedding=mean)

    def _source_face(self, image: np.ndarray, number: int) -> Face:
        """The largest usable face of a source photo, or ``no_face_in_source`` saying why there is none."""
        from swapface.faces.verification import source_problem

        analysis = self.analyser.analyse_still_detailed(image)
        problems = [source_problem(f, image.shape) for f in analysis.faces]
        usable = [f for f, problem in zip(analysis.faces, problems) if problem is None]
        if usable:
            return max(usable, key=lambda f: f.area)
        why = next((p for p in problems if p), None)
        if why is None and analysis.rejected:
            best = max(analysis.rejected, key=lambda r: r.score)
            why = f"the best candidate was rejected, {best.reason}"
        detail = f": {why}" if why else ""
        raise InputError(f"no face found in source image #{number}{detail}; use a photo where the face is clearly "
                         "visible", code="no_face_in_source")

    def _reference_embedding(self, reference: np.ndarray | None) -> np.ndarray | None:
        if self.options.face_selector_mode != "reference":
            return None
        if reference is None:
            raise InputError("face selector mode 'reference' needs a reference face image (--reference-face)")
        found = self.analyser.analyse_still(reference)
        if not found:
            raise InputError("no face found in the reference face image", code="no_face_in_reference")
        main = max(found, key=lambda f: f.area)
        assert main.embedding is not None
        return main.embedding

    @property
    def output_scale(self) -> int:
        """How many times larger output frames are than input frames (frame enhancers upscale)."""
        scale = 1
        for processor in self.processors:
            scale *= int(getattr(processor, "scale", 1))
        return scale

    @property
    def notices(self) -> list[str]:
        """One-line warnings the processors gave about the inputs (a small or turned source, a face left
        unchanged), each once, in the order they arose."""
        seen: list[str] = []
        for processor in self.processors:
            for text in getattr(processor, "notices", ()):
                if text not in seen:
                    seen.append(text)
        return seen

    # -- per frame ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget per-clip state (tracks, smoothing — the processors' too): call between unrelated clips.

        A chunk's pixels then depend only on its own frames, never on what the worker processed before.
        """
        self.analyser.reset()
        for processor in self.processors:
            reset = getattr(processor, "reset", None)
            if callable(reset):
                reset()
        self._index = 0
        self._anchor = None
        self._rendered = None

    def select(self, faces: list[Face]) -> list[Face]:
        """The faces to process in a frame, by the selector mode."""
        if not faces:
            return []
        mode = self.options.face_selector_mode
        faces = order_faces(faces, self.options.face_selector_order)
        if mode == "one":
            return faces[:1]
        if mode == "many":
            return faces
        assert self.reference_embedding is not None
        limit = self.options.reference_face_distance
        if limit is None:
            limit = float(getattr(self.analyser.embedder, "match_distance", 0.6))
        return [
            f
            for f in faces
            if f.embedding is not None and identity_distance(f.embedding, self.reference_embedding) <= limit
        ]

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        """Swap the chosen faces of one RGB frame; returns a new frame (the input is left untouched)."""
        return self.render_frame(self.analyse_frame(frame))

    def analyse_frame(self, frame: np.ndarray) -> FrameEvent:
        """The first half of :meth:`process_frame`: find faces, choose targets, run the ``pre_frame`` hook.

        Frames must be analysed in order (tracks); the returned event goes to :meth:`render_frame`,
        which may run in another thread, one frame behind (it touches no analysis state).
        """
        index = self._index
        self._index += 1
        thumbnail = motion_thumbnail(frame) if self.video else None
        if thumbnail is not None and self._anchor is not None and repeats(self._anchor[0], thumbnail):
            # compared with the frame last analysed, not the one before: a slow fade or pan is never a chain of repeats
            earlier = self._anchor[1]
            event = FrameEvent(index=index, frame=frame, faces=list(earlier.faces), targets=list(earlier.targets),
                               repeats=earlier.index)
        else:
            faces = self.analyser.analyse(frame)
            event = FrameEvent(index=index, frame=frame, faces=faces, targets=self.select(faces))
            if thumbnail is not None:
                self._anchor = (thumbnail, event)
        if self.pre_frame is not None:
            self.pre_frame(event)
        return event

    def render_frame(self, event: FrameEvent) -> np.ndarray:
        """The second half of :meth:`process_frame`: run the processors on the event's targets; a new frame.

        A repeat of a frame rendered last (see :class:`FrameEvent`) is given a copy of that frame's output, unless
        a ``pre_frame`` hook chose other targets in it."""
        frame, faces, targets = event.frame, event.faces, event.targets
        self.stats.frames += 1
        if targets:
            self.stats.frames_with_faces += 1
            self.stats.faces_processed += len(targets)
        anchor = event.index if event.repeats is None else event.repeats
        rendered = self._rendered
        if (event.repeats is not None and rendered is not None and rendered[0] == anchor
                and len(rendered[1]) == len(targets) and all(a is b for a, b in zip(rendered[1], targets))):
            out = rendered[2].copy()
        else:
            out = self._processed(frame, faces, targets)
            if self.video:
                self._rendered = (anchor, list(targets), out.copy())
        if self.post_frame is not None:
            self.post_frame(FrameEvent(index=event.index, frame=out, faces=faces, targets=targets, repeats=event.repeats))
        return out

    def _processed(self, frame: np.ndarray, faces: list[Face], targets: list[Face]) -> np.ndarray:
        """The processors run over one frame's targets (or whole-frame processors where there are none)."""
        out = frame
        if targets:
            for processor in self.processors:
                out = processor.process(out, faces_at_scale(targets, frame, out), self.source)
        elif any(getattr(p, "whole_frame", False) for p in self.processors):
            for processor in self.processors:
                if getattr(processor, "whole_frame", False):
                    out = processor.process(out, [], self.source)
        return frame.copy() if out is frame else out
