"""Processor ``frame_enhancer``: Real-ESRGAN ×2/×4 over the whole frame in padded, overlapping tiles, blended.

Each tile is ``tile`` px with ``pad`` px of context on every side (the context is dropped from the
output, so tile seams see the same neighbourhood as the whole image); neighbouring cores overlap by
``overlap`` px and are cross-faded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype, run_batched
from swapface.models.templates import from_tensor, to_tensor
from swapface.processors.base import SourceIdentity


def tile_origins(length: int, core: int, overlap: int) -> list[int]:
    """Start offsets of cores of ``core`` px covering ``length`` px with at least ``overlap`` px overlap."""
    if length <= core:
        return [0]
    step = core - overlap
    starts = list(range(0, length - core, step))
    return starts + [length - core]


def _ramp(n: int, overlap: int) -> np.ndarray:
    """Weights rising over ``overlap`` px at both ends of a core (never zero)."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = np.minimum(w[:overlap], r)
        w[n - overlap:] = np.minimum(w[n - overlap:], r[::-1])
    return w


class FrameEnhancer:
    """Upscales whole frames (the output is ``upscale`` × larger) and blends with the plainly resized frame."""

    name = "frame_enhancer"
    needs_source = False
    whole_frame = True

    def __init__(self, options: Any, models_dir: Path | None = None) -> None:
        self.model = LazyModel(options.frame_enhancer_model, options, models_dir, task="frame_enhancer")
        self.blend = options.frame_enhancer_blend / 100.0
        self.batch_size = int(options.execution_batch_size)
        self.scale = self.model.contract.upscale  # output frames are this many times larger

    def upscale(self, frame: np.ndarray) -> np.ndarray:
        """The model's upscaled frame, computed tile by tile."""
        c = self.model.contract
        tile, pad, overlap = c.tile
        s = c.upscale
        core = tile - 2 * pad
        h, w = frame.shape[:2]
        ph, pw = max(h, core), max(w, core)
        base = cv2.copyMakeBorder(frame, 0, ph - h, 0, pw - w, cv2.BORDER_REFLECT_101) if (ph, pw) != (h, w) else frame
        padded = cv2.copyMakeBorder(base, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        spots = [(y, x) for y in tile_origins(ph, core, overlap) for x in tile_origins(pw, core, overlap)]
        tiles = np.stack([padded[y:y + tile, x:x + tile] for y, x in spots])
        session = self.model.session
        (out,) = run_batched(session, {session.get_inputs()[0].name: to_tensor(tiles, c, input_dtype(session))},
                             self.batch_size)[:1]
        ups = from_tensor(out, c).astype(np.float32)
        acc = np.zeros((ph * s, pw * s, 3), np.float32)
        weight = np.zeros((ph * s, pw * s, 1), np.float32)
        ramp = _ramp(core * s, overlap * s)
        wmap = (ramp[:, None] * ramp[None, :])[..., None]
        for (y, x), up in zip(spots, ups):
            part = up[pad * s:(pad + core) * s, pad * s:(pad + core) * s]
            acc[y * s:(y + core) * s, x * s:(x + core) * s] += part * wmap
            weight[y * s:(y + core) * s, x * s:(x + core) * s] += wmap
        result = acc / np.maximum(weight, 1e-6)
        return np.clip(result[: h * s, : w * s] + 0.5, 0, 255).astype(np.uint8)

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """The frame upscaled by the model and blended (``frame_enhancer_blend``) with a plain resize."""
        up = self.upscale(frame)
        if self.blend >= 1.0:
            return up
        plain = cv2.resize(frame, (up.shape[1], up.shape[0]), interpolation=cv2.INTER_CUBIC)
        return cv2.addWeighted(plain, 1.0 - self.blend, up, self.blend, 0.0)


def build(options: Any) -> FrameEnhancer:
    """Factory of the ``frame_enhancer`` processor."""
    return FrameEnhancer(options)
