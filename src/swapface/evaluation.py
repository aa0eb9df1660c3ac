"""Swap quality metrics as pure functions: identity, pose/expression kept, and added flicker.

- identity: distance of an output face's embedding to the source's (small = the source's identity went
  in) and to the original face's (large = the original identity went out);
- landmark error: mean distance between output and input landmarks in percent of the input face's
  inter-ocular distance (small = pose and expression kept);
- temporal change ratio: frame-to-frame change inside the face region of the output divided by the
  same in the input (1.0 = the swap adds no flicker);
- landmark jitter: the frame-to-frame change of (output landmarks − input landmarks), in inter-ocular
  distances, both measured by an independent landmarker: what a viewer sees wobble that the input
  does not (0 = the swapped face moves exactly as the original; a frozen face shows the input's motion).
  :mod:`swapface.jitter` walks a clip with these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two L2-normalised embeddings (0 = same person's vector)."""
    a = np.asarray(a, np.float32).ravel()
    b = np.asarray(b, np.float32).ravel()
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    b = b / max(float(np.linalg.norm(b)), 1e-12)
    return float(np.linalg.norm(a - b))


def landmark_error(output_points: np.ndarray, input_points: np.ndarray, interocular: float) -> float:
    """Mean point-to-point distance in percent of the inter-ocular distance."""
    out = np.asarray(output_points, np.float32).reshape(-1, 2)
    ref = np.asarray(input_points, np.float32).reshape(-1, 2)
    if out.shape != ref.shape:
        raise ValueError("landmark sets differ in size")
    return float(np.linalg.norm(out - ref, axis=1).mean() / max(interocular, 1e-6) * 100.0)


def clip_box(box: Sequence[float] | np.ndarray, shape: tuple[int, ...], grow: float = 0.1) -> tuple[int, int, int, int]:
    """A face box grown by ``grow`` of its size on each side, clipped to the frame, as integer pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * grow, (y2 - y1) * grow
    h, w = shape[:2]
    return (max(0, int(x1 - dx)), max(0, int(y1 - dy)), min(w, int(np.ceil(x2 + dx))), min(h, int(np.ceil(y2 + dy))))


def region_change(previous: np.ndarray, current: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two frames inside a box (grey levels, 0..255)."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return 0.0
    a = previous[y1:y2, x1:x2].astype(np.float32)
    b = current[y1:y2, x1:x2].astype(np.float32)
    return float(np.abs(a - b).mean())


def temporal_change_ratio(output_changes: Sequence[float], input_changes: Sequence[float]) -> float | None:
    """Total face-region change of the output over that of the input; None when the input never changes."""
    total_in = float(np.sum(input_changes))
    if total_in <= 1e-9:
        return None
    return float(np.sum(output_changes)) / total_in


def offset_jitter(previous_offset: np.ndarray, offset: np.ndarray, interocular: float) -> float:
    """Mean change between two frames' (output − input) landmark offsets, in inter-ocular distances."""
    a = np.asarray(previous_offset, np.float32).reshape(-1, 2)
    b = np.asarray(offset, np.float32).reshape(-1, 2)
    if a.shape != b.shape:
        raise ValueError("landmark sets differ in size")
    return float(np.linalg.norm(b - a, axis=1).mean() / max(interocular, 1e-6))


@dataclass(frozen=True)
class FrameMetrics:
    """Metrics of one frame; None where the frame has no face (or, for change, no previous frame)."""

    index: int
    to_source: float | None = None
    to_original: float | None = None
    landmark_error_pct: float | None = None
    change_output: float | None = None
    change_input: float | None = None
    jitter: float | None = None


@dataclass(frozen=True)
class EvalSummary:
    """Means over the frames that have a face (jitter: over consecutive pairs of them), and the temporal
    change ratio over the whole clip."""

    frames: int
    frames_with_face: int
    identity_to_source: float | None
    identity_to_original: float | None
    landmark_error_pct: float | None
    temporal_change_ratio: float | None
    landmark_jitter: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize(frames: Sequence[FrameMetrics]) -> EvalSummary:
    """Aggregate per-frame metrics into one summary."""
    pairs = [(f.change_output, f.change_input) for f in frames if f.change_output is not None and f.change_input is not None]
    ratio = temporal_change_ratio([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    return EvalSummary(
        frames=len(frames),
        frames_with_face=sum(1 for f in frames if f.to_source is not None or f.landmark_error_pct is not None),
        identity_to_source=_mean([f.to_source for f in frames]),
        identity_to_original=_mean([f.to_original for f in frames]),
        landmark_error_pct=_mean([f.landmark_error_pct for f in frames]),
        temporal_change_ratio=ratio,
        landmark_jitter=_mean([f.jitter for f in frames]),
    )
