"""Plain data that describes a job and its pieces; it crosses process and machine boundaries unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from swapface.media.video_limits import VideoLimits
from swapface.options import SwapOptions


@dataclass(frozen=True)
class JobSpec:
    """What to swap into what. Paths are local paths or fsspec URIs (file://, gs://, s3://, memory://).

    ``work_dir`` holds the manifest and the per-chunk segments; it is the job's checkpoint. A video target over
    ``video_limits`` fails before any frame is decoded.
    """

    job_id: str
    sources: tuple[str, ...]
    target: str
    output: str
    work_dir: str
    options: SwapOptions = field(default_factory=SwapOptions)
    reference_face: str | None = None
    video_limits: VideoLimits | None = None


@dataclass(frozen=True)
class Chunk:
    """A frame range [frame_start, frame_end) of the target; an image is one chunk of one frame."""

    index: int
    frame_start: int
    frame_end: int

    @property
    def frames(self) -> int:
        return self.frame_end - self.frame_start


@dataclass(frozen=True)
class Segment:
    """A finished chunk: where its encoded frames are, how many were written, how many were lost, and the
    ONNX Runtime providers (short names) its models ran on."""

    chunk: Chunk
    uri: str
    frames: int
    lost_frames: int = 0
    providers: tuple[str, ...] = ()
