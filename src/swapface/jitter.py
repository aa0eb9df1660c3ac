"""Landmark jitter and temporal change ratio of a swap, measured one way for ``swapface eval``,
``scripts/bench_analysis.py`` and the tests, so that their figures cannot drift apart.

Jitter: the frame-to-frame change of (output landmarks − input landmarks) in inter-ocular distances, both
measured by dlib's 68-point model (independent of the mesh the swap fits) inside the input face's box;
temporal change ratio: the output's face-region change over the input's. The maths is in
:mod:`swapface.evaluation`; this module walks a clip with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from swapface.evaluation import clip_box, offset_jitter, region_change, temporal_change_ratio
from swapface.faces.dlib_landmarks import Dlib68Landmarker, interocular_68


@dataclass(frozen=True)
class FrameJitter:
    """One frame's jitter and face-region changes against the frame before; None where not measured."""

    jitter: float | None = None
    change_output: float | None = None
    change_input: float | None = None


@dataclass(frozen=True)
class JitterResult:
    """Mean jitter over the measured frame pairs and the clip's temporal change ratio; None where there were none."""

    jitter: float | None
    temporal_change_ratio: float | None


class JitterMeter:
    """Measures a swap frame by frame, holding only the frame before (so that a long clip streams).

    Jitter is measured between consecutive analysed frames that both have a face. Face-region change is
    measured on the same pairs, or, with ``every_frame_change`` (``swapface eval``, which may analyse faces
    only every N frames), on every frame after the first, inside the latest analysed frame's face box."""

    def __init__(self, landmarker: Dlib68Landmarker | None = None, every_frame_change: bool = False) -> None:
        self.landmarker = landmarker or Dlib68Landmarker()
        self.every_frame_change = every_frame_change
        self.frames: list[FrameJitter] = []
        self._offset: np.ndarray | None = None  # output − input 68-point offsets of the last analysed frame
        self._region: tuple[int, int, int, int] | None = None  # where face-region change is measured
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # the frame before: (input, output)

    def add(self, inp: np.ndarray, out: np.ndarray, box: np.ndarray | None, analysed: bool = True) -> FrameJitter:
        """Measure the next frame: ``box`` is the input's face box (None: no face); a frame not ``analysed`` keeps the last box."""
        jitter = self._landmark_step(inp, out, box) if analysed else None
        change_out = change_in = None
        if self._previous is not None and self._region is not None and (self.every_frame_change or jitter is not None):
            change_out = region_change(self._previous[1], out, self._region)
            change_in = region_change(self._previous[0], inp, self._region)
        self._previous = (inp, out)
        step = FrameJitter(jitter, change_out, change_in)
        self.frames.append(step)
        return step

    def _landmark_step(self, inp: np.ndarray, out: np.ndarray, box: np.ndarray | None) -> float | None:
        """The change of the output − input offsets since the last analysed frame (None after one without a face)."""
        if box is None:
            self._offset = self._region = None
            return None
        points_in = self.landmarker.steady_points(inp, box)
        offset = self.landmarker.steady_points(out, box) - points_in
        jitter = None if self._offset is None else offset_jitter(self._offset, offset, interocular_68(points_in))
        self._offset, self._region = offset, clip_box(box, inp.shape)
        return jitter

    def result(self) -> JitterResult:
        """Mean jitter and temporal change ratio over the frames measured so far."""
        jitters = [f.jitter for f in self.frames if f.jitter is not None]
        changes = [(f.change_output, f.change_input) for f in self.frames
                   if f.change_output is not None and f.change_input is not None]
        return JitterResult(float(np.mean(jitters)) if jitters else None,
                            temporal_change_ratio([c[0] for c in changes], [c[1] for c in changes]))


def measure_jitter(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                   find_box: Callable[[np.ndarray], np.ndarray | None],
                   landmarker: Dlib68Landmarker | None = None) -> JitterResult:
    """Landmark jitter and temporal change ratio of a swap (RGB frames in order), faces boxed by ``find_box`` on the input."""
    meter = JitterMeter(landmarker)
    for inp, out in zip(inputs, outputs):
        meter.add(inp, out, find_box(inp))
    return meter.result()
