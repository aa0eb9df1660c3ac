"""A clip's output timeline at another frame rate (``--output-video-fps``), and the whole-frame resize
(``--output-video-resolution``).

Output frame ``k`` shows at ``k / fps`` seconds from the clip's start and repeats the input frame on screen
at that moment, so frames are dropped or repeated by timestamp: the output lasts as long as the input
(within one output frame) and the audio, copied by time, stays in sync. Which input frame feeds which
output frames depends only on the timestamps, so every chunk of a job computes the same plan for its own
frame range and the merged segments join without gap or overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from swapface.media.video import VideoInfo

NTSC_TOLERANCE = 0.002  # 29.97 means 30000/1001, as every NTSC-rate clip stores it
TIME_SLACK_S = 1e-6  # timestamps are rounded to ticks: a frame starting this close to t counts as on screen at t


def output_rate(fps: float) -> Fraction:
    """The exact rate for a frame rate as users write it: 29.97 → 30000/1001, 25 → 25, 12.5 → 25/2."""
    ntsc = round(fps * 1.001)
    if abs(fps - ntsc / 1.001) < NTSC_TOLERANCE and abs(fps - ntsc) > NTSC_TOLERANCE:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


@dataclass(frozen=True)
class Retime:
    """The output timeline: its :class:`VideoInfo` and, per output frame, the input frame it shows."""

    info: VideoInfo
    sources: np.ndarray  # int64, one input frame index per output frame, non-decreasing

    def output_range(self, start: int, end: int) -> tuple[int, int]:
        """Output frames [k0, k1) fed by input frames [start, end)."""
        k0, k1 = np.searchsorted(self.sources, [start, end], side="left")
        return int(k0), int(k1)

    def copies(self, start: int, end: int) -> dict[int, list[int]]:
        """Input frame index → the output pts it is written at (none: the frame is dropped), for [start, end)."""
        k0, k1 = self.output_range(start, end)
        out: dict[int, list[int]] = {}
        for k in range(k0, k1):
            out.setdefault(int(self.sources[k]), []).append(self.info.pts[k])
        return out


def retime(info: VideoInfo, fps: float) -> Retime:
    """The clip resampled to ``fps``: as many output frames as fit its duration, each showing the input frame
    on screen at its time. Output timestamps count frames (time base ``1/fps``) from the input's first
    timestamp, so a clip that starts late keeps its offset to the audio."""
    rate = output_rate(fps)
    starts = (np.asarray(info.pts, np.float64) - info.pts[0]) * float(info.time_base)
    count = max(1, round(info.duration * rate))
    times = np.arange(count, dtype=np.float64) * float(1 / rate)
    sources = np.clip(np.searchsorted(starts, times + TIME_SLACK_S, side="right") - 1, 0, info.frames - 1)
    time_base = 1 / rate
    first = round(info.pts[0] * info.time_base / time_base) if info.pts else 0
    timeline = replace(info, frames=count, rate=rate, time_base=time_base,
                       pts=tuple(range(first, first + count)), declared_frames=0)
    return Retime(timeline, sources.astype(np.int64))


def stored_size(info: VideoInfo, size: tuple[int, int] | None, scale: int = 1) -> tuple[int, int]:
    """(width, height) of the encoded frames: ``size`` as displayed (turned for a rotated clip), else the
    input's stored size times a frame enhancer's ``scale``."""
    if size is None:
        return info.width * scale, info.height * scale
    width, height = size
    return (height, width) if info.rotation % 180 else (width, height)


def resize_frame(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The upright frame scaled to ``size`` (width, height): area averaging down, Lanczos up."""
    import cv2

    width, height = size
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrink = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
