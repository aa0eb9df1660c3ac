"""How large a target video may be (pixels per frame, frames, seconds), and the one check of a probed video
against those limits: at submit for uploads and references, and in the worker for jobs whose target was never
seen at submit (Pub/Sub events)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from swapface.config import Settings
from swapface.errors import InputError


@dataclass(frozen=True)
class VideoLimits:
    """How large a target video may be: pixels per frame, frames, seconds."""

    pixels: int
    frames: int
    seconds: float

    @classmethod
    def for_key(cls, settings: Settings, key_name: str | None) -> "VideoLimits":
        """The settings' limits, with the key's own overrides (``video_limits_by_key``)."""
        own = settings.video_limits_by_key.get(key_name or "", {})
        return cls(int(own.get("max_video_pixels", settings.max_video_pixels)),
                   int(own.get("max_video_frames", settings.max_video_frames)),
                   float(own.get("max_video_seconds", settings.max_video_seconds)))


def check_video_size(info: Any, limits: VideoLimits) -> None:
    """Refuse a video over the pixel, frame or duration limit (before any frame is decoded for the job)."""
    pixels = info.width * info.height
    if pixels > limits.pixels:
        raise InputError(f"the target video's frames have {info.width}x{info.height} pixels, over the limit of "
                         f"{limits.pixels:,} (SWAPFACE_MAX_VIDEO_PIXELS)", code="video_too_large")
    frames = max(info.frames, getattr(info, "declared_frames", 0) or 0)
    if frames > limits.frames:
        raise InputError(f"the target video has {frames:,} frames, over the limit of {limits.frames:,} "
                         "(SWAPFACE_MAX_VIDEO_FRAMES)", code="video_too_long")
    seconds = frames / float(info.rate) if info.rate else 0.0
    if seconds > limits.seconds:
        raise InputError(f"the target video lasts {seconds:.0f} s, over the limit of {limits.seconds:g} s "
                         "(SWAPFACE_MAX_VIDEO_SECONDS)", code="video_too_long")


def limits_from_spec(values: dict[str, Any] | None) -> VideoLimits | None:
    """The limits stored in a job's spec (``video_limits``), None when the job has none."""
    return VideoLimits(int(values["pixels"]), int(values["frames"]), float(values["seconds"])) if values else None


def limits_to_spec(limits: VideoLimits) -> dict[str, Any]:
    """The limits as a job's spec stores them."""
    return asdict(limits)
