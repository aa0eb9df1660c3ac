"""Splitting a clip into chunks: frame ranges of about ``chunk_seconds`` inside the trim range."""

from __future__ import annotations

from swapface.errors import InputError
from swapface.jobs.spec import Chunk
from swapface.options import SwapOptions


def frame_range(frames: int, options: SwapOptions) -> tuple[int, int]:
    """The [start, end) frames to process after trimming; InputError when the trim leaves nothing."""
    start = options.trim_frame_start or 0
    end = frames if options.trim_frame_end is None else min(options.trim_frame_end, frames)
    if start >= end:
        raise InputError(
            f"the trim range [{start}, {end}) holds no frames; the clip has {frames} frame(s)", code="bad_trim"
        )
    return start, end


def plan_chunks(frames: int, fps: float, options: SwapOptions) -> list[Chunk]:
    """Chunks covering the trim range in order; every chunk but the last has ``round(chunk_seconds * fps)`` frames."""
    start, end = frame_range(frames, options)
    size = max(1, round(options.chunk_seconds * max(fps, 1e-3)))
    return [
        Chunk(index=i, frame_start=s, frame_end=min(s + size, end)) for i, s in enumerate(range(start, end, size))
    ]


def plan_image() -> list[Chunk]:
    """An image is one chunk of one frame."""
    return [Chunk(index=0, frame_start=0, frame_end=1)]
