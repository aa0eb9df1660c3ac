"""Video files in and out with PyAV (FFmpeg inside the wheel): probe, decode a frame range, encode a segment.

Frames leave this module as RGB uint8 arrays with their presentation timestamp (pts, in the
video stream's time base) and go back in with the same pts, so variable frame rates survive.
Frames are processed upright: a rotated clip (phone video) is turned by its display matrix after
decoding and turned back before encoding, and the matrix is written again on the output.
A folder of images works as a clip too (see :mod:`swapface.media.sequence`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from swapface.errors import InputError

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
ENCODERS = ("libx264", "libx265", "libvpx-vp9", "h264_nvenc")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
FIRST_PTS_TAG = "swapface_first_pts"
# containers an output may be written to, and the video encoders each accepts
CONTAINERS = {
    ".mp4": ("mp4", ENCODERS),
    ".m4v": ("mp4", ENCODERS),
    ".mov": ("mov", ENCODERS),
    ".mkv": ("matroska", ENCODERS),
    ".webm": ("webm", ("libvpx-vp9",)),
}


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is: frame count, per-frame timestamps, rate, size, rotation, audio.

    ``pts`` holds every frame's presentation timestamp in ``time_base`` units, in display order;
    ``declared_frames`` is the count the container header claims (0 when unknown), so frames a
    truncated file lost can be counted. ``files`` lists the frames of an image sequence.
    """

    frames: int
    rate: Fraction
    time_base: Fraction
    pts: tuple[int, ...]
    width: int
    height: int
    rotation: int = 0
    audio_streams: int = 0
    declared_frames: int = 0
    codec: str = ""
    files: tuple[str, ...] = ()

    @property
    def fps(self) -> float:
        """Average frames per second."""
        return float(self.rate)

    @property
    def is_sequence(self) -> bool:
        return bool(self.files)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        if not self.pts:
            return 0.0
        return float((self.pts[-1] - self.pts[0]) * self.time_base) + 1.0 / self.fps

    @property
    def vfr(self) -> bool:
        """Whether frame durations vary by more than one tick (variable frame rate)."""
        steps = np.diff(np.asarray(self.pts, np.int64))
        return bool(steps.size) and int(steps.max() - steps.min()) > 1

    @property
    def missing_frames(self) -> int:
        """Frames the header declares but the file does not hold (a truncated download)."""
        return max(0, self.declared_frames - self.frames)

    def seconds(self, index: int) -> float:
        """Start time of frame ``index`` (the clip's end when ``index`` is the frame count)."""
        if index >= self.frames:
            return float((self.pts[-1] - self.pts[0]) * self.time_base) + 1.0 / self.fps if self.pts else 0.0
        return float((self.pts[index] - self.pts[0]) * self.time_base)


def is_video_path(path: str | Path) -> bool:
    """Whether the name looks like a video file (by suffix)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"cannot read {p.name!r}: no such file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {p.name!r}: not a video ({type(exc).__name__})") from None
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        raise InputError(f"cannot read {p.name!r}: it has no video stream")
    return container


def _rotation(container: av.container.InputContainer) -> int:
    """The display rotation (counter-clockwise degrees, multiple of 90) of the first decodable frame."""
    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360 // 90 * 90
    except av.error.FFmpegError:
        return 0
    return 0


def probe(path: str | Path) -> VideoInfo:
    """Describe a video file (or a folder of frames); InputError when it is not a usable clip.

    Timestamps come from demuxing (no decoding), so probing a long clip takes a moment, not minutes.
    """
    p = Path(path)
    if p.is_dir():
        from swapface.media.sequence import probe_sequence

        return probe_sequence(p)
    container = _open(p)
    try:
        stream: Any = container.streams.video[0]  # PyAV's stubs leave rates and time bases optional
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None and packet.size:
                    pts.append(int(stamp))
        except av.error.FFmpegError:
            pass  # a damaged tail: the timestamps read so far stand
        if not pts:
            raise InputError(f"cannot read {p.name!r}: no decodable video frames")
        pts = sorted(set(pts))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate and len(pts) > 1:
            rate = Fraction(len(pts) - 1, 1) / ((pts[-1] - pts[0]) * stream.time_base)
        container.seek(0, stream=stream)
        rotation = _rotation(container)
        return VideoInfo(
            frames=len(pts),
            rate=Fraction(rate or 25).limit_denominator(1_000_000),
            time_base=Fraction(stream.time_base),
            pts=tuple(pts),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rotation=rotation,
            audio_streams=len(container.streams.audio),
            declared_frames=int(stream.frames or 0),
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as a viewer sees it (display rotation applied)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k)) if k else frame


def stored(frame: np.ndarray, rotation: int) -> np.ndarray:
    """The frame back in its stored orientation (inverse of :func:`upright`)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, -k)) if k else frame


@dataclass
class DecodeReport:
    """Filled while decoding: frames delivered and frames of the range that could not be decoded."""

    decoded: int = 0
    lost: int = 0


def decode_frames(
    path: str | Path, info: VideoInfo, start: int, end: int, report: DecodeReport | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(index, pts, rgb)`` for frames ``start <= index < end``, upright, in order.

    Seeks to the keyframe at or before ``start`` and decodes forward; damaged packets are skipped
    and counted in ``report.lost`` (the range's frames that never came out).
    """
    report = report if report is not None else DecodeReport()
    end = min(end, info.frames)
    if start >= end:
        return
    if info.is_sequence:
        from swapface.media.sequence import decode_sequence

        yield from decode_sequence(info, start, end, report)
        return
    index_of = {stamp: i for i, stamp in enumerate(info.pts)}
    first, stop = info.pts[start], (info.pts[end] if end < info.frames else None)
    container = _open(path)
    expected = start
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0:
            container.seek(first, stream=stream, backward=True, any_frame=False)
        done = False
        packets = container.demux(stream)
        while not done:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                break  # unreadable tail
            try:
                frames = stream.decode(packet)
            except (av.error.InvalidDataError, av.error.FFmpegError):
                continue
            for frame in frames:
                stamp = frame.pts if frame.pts is not None else frame.dts
                if stamp is None or stamp < first:
                    continue
                if stop is not None and stamp >= stop:
                    done = True
                    break
                index = index_of.get(int(stamp))
                if index is None or index < expected:
                    continue
                report.lost += index - expected
                expected = index + 1
                report.decoded += 1
                yield index, int(stamp), upright(frame.to_ndarray(format="rgb24"), info.rotation)
    finally:
        container.close()
    report.lost += end - expected


def _crf(encoder: str, quality: int) -> int:
    """Map quality 1..100 to the encoder's constant-quality scale as FaceFusion does (CRF 51 − 0.51 · quality,
    VP9's 63 − 0.63 · quality), so the option means what its users know: the default 80 is CRF 10, near
    transparent. Each encode of a swapped frame loses more of a face's fine detail and motion; at CRF 19 a
    plain re-encode of carphone kept 93 % of its face region's frame-to-frame change, at CRF 10 98 %."""
    q = min(max(int(quality), 1), 100)
    if encoder == "libvpx-vp9":
        return round(63 - q * 0.63)
    return round(51 - q * 0.51)


def encoder_options(encoder: str, quality: int, preset: str) -> dict[str, str]:
    """FFmpeg private options for an encoder at a quality and a preset."""
    if preset not in PRESETS:
        raise InputError(f"unknown video preset {preset!r}; choose from {', '.join(PRESETS)}")
    crf = str(_crf(encoder, quality))
    if encoder in ("libx264", "libx265"):
        opts = {"crf": crf, "preset": preset}
        if encoder == "libx265":
            opts["x265-params"] = "log-level=error"
        return opts
    if encoder == "libvpx-vp9":
        speed = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4, "medium": 3}.get(preset, 2)
        return {"crf": crf, "b": "0", "cpu-used": str(speed), "deadline": "good" if speed < 5 else "realtime",
                "row-mt": "1"}
    if encoder == "h264_nvenc":
        level = PRESETS.index(preset)
        return {"rc": "vbr", "cq": crf, "preset": f"p{min(7, max(1, level))}"}
    if encoder == "ffv1":
        return {}
    raise InputError(f"unknown video encoder {encoder!r}; choose from {', '.join(ENCODERS)}")


def check_encoder(encoder: str, output_suffix: str | None = None) -> None:
    """InputError unless this FFmpeg build has the encoder and the output container can hold it."""
    if encoder not in ENCODERS:
        raise InputError(f"unknown video encoder {encoder!r}; choose from {', '.join(ENCODERS)}")
    if encoder not in av.codecs_available:
        raise InputError(f"video encoder {encoder!r} is not in this FFmpeg build; use libx264")
    if output_suffix is not None and output_suffix in CONTAINERS and encoder not in CONTAINERS[output_suffix][1]:
        raise InputError(f"{output_suffix} outputs need the libvpx-vp9 encoder (--output-video-encoder libvpx-vp9)")


class SegmentWriter:
    """Encodes RGB frames at their original pts into one segment file (MP4, or MKV for lossless FFV1).

    The stream's time base is the input's, so timestamps pass through unchanged (VFR kept).
    """

    def __init__(
        self, path: str | Path, info: VideoInfo, *, encoder: str = "libx264", quality: int = 80, preset: str = "veryfast"
    ) -> None:
        self.path = Path(path)
        self.info = info
        fmt = "matroska" if encoder == "ffv1" else "mp4"
        options = {} if encoder == "ffv1" else {"movflags": "use_metadata_tags"}
        self.container = av.open(str(self.path), "w", format=fmt, options=options)
        self._started = False
        stream = self.container.add_stream(encoder, rate=info.rate, options=encoder_options(encoder, quality, preset))
        assert isinstance(stream, av.VideoStream)  # a video encoder gives a video stream
        self.stream = stream
        self.stream.width, self.stream.height = info.width, info.height
        if encoder == "ffv1":
            self.stream.pix_fmt = "bgr0"
        elif encoder == "h264_nvenc":
            self.stream.pix_fmt = "yuv420p"
        else:
            even = info.width % 2 == 0 and info.height % 2 == 0
            self.stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self.stream.time_base = info.time_base
        self.stream.codec_context.time_base = info.time_base
        self.stream.thread_count = 0
        if info.rotation:
            self.stream.set_display_rotation(info.rotation)
        self.frames = 0

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one upright RGB frame with its original pts."""
        if not self._started:  # muxers may shift timestamps; the first pts is kept as a tag for the merger
            self.container.metadata[FIRST_PTS_TAG] = str(pts)
            self._started = True
        frame = av.VideoFrame.from_ndarray(stored(rgb, self.info.rotation), format="rgb24")
        frame.pts = pts
        frame.time_base = self.info.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> "SegmentWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.container.close()


def encode_segment(
    path: str | Path, frames: Iterable[tuple[int, np.ndarray]], info: VideoInfo, *, encoder: str = "libx264",
    quality: int = 80, preset: str = "veryfast",
) -> int:
    """Encode ``(pts, rgb)`` pairs into a segment file; returns the number of frames written."""
    with SegmentWriter(path, info, encoder=encoder, quality=quality, preset=preset) as writer:
        for pts, rgb in frames:
            writer.write(rgb, pts)
        return writer.frames


def frame_times(path: str | Path) -> list[float]:
    """Every frame's presentation time in seconds (display order), read from the container's packets."""
    info = probe(path)
    return [float((p - info.pts[0]) * info.time_base) for p in info.pts]


def count_decodable(path: str | Path) -> int:
    """How many frames actually decode (a check for tests and for reports)."""
    container = _open(path)
    count = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            try:
                count += len(stream.decode(packet))
            except av.error.FFmpegError:
                continue
    finally:
        container.close()
    return count


__all__ = [
    "DecodeReport",
    "SegmentWriter",
    "VideoInfo",
    "check_encoder",
    "count_decodable",
    "decode_frames",
    "encode_segment",
    "encoder_options",
    "frame_times",
    "is_video_path",
    "probe",
    "stored",
    "upright",
]
