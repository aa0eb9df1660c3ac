"""Joining encoded segments into one video and copying the original's audio beside it, without re-encoding.

Video packets are stream-copied from the segments with their timestamps restored (each segment
carries its first frame's pts as a tag), so frame count, VFR timing and rotation stay the input's.
Every audio stream of the original is copied packet by packet, trimmed to the processed range;
only when the output container cannot hold the audio codec is that stream re-encoded.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from swapface.errors import InputError
from swapface.media.video import CONTAINERS, FIRST_PTS_TAG, VideoInfo

# audio codecs each output container takes as they are (others are re-encoded)
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
AUDIO_FALLBACK = {"webm": "libopus"}


@dataclass
class MuxReport:
    """What the merge wrote: video frames and, per audio stream, whether it was copied or re-encoded."""

    frames: int = 0
    audio_copied: int = 0
    audio_reencoded: int = 0


def _usable(packet: av.Packet) -> bool:
    return packet.pts is not None and packet.dts is not None and packet.size > 0


def _segment_packets(paths: Sequence[Path], out_stream: Any, in_tb: Fraction,
                     shift: int) -> Iterator[tuple[float, int, av.Packet]]:
    """Video packets of every segment in order, timestamps (input ticks) moved back to the original's minus ``shift``.

    Decode timestamps are laid out again for the joined stream, as one encode would have them: the sorted
    presentation times, delayed by the largest reordering any segment needs. Each segment's own decode times
    start before its first frame (B-frames), so kept as they are they overlap the previous segment's, and
    pushing them apart stretched the stream's timing (a 25 fps output read as 24 fps)."""
    time_bases: list[Fraction] = []
    stamps: list[int] = []
    for path in paths:
        with av.open(str(path)) as seg:
            stream: Any = seg.streams.video[0]
            first = int(seg.metadata.get(FIRST_PTS_TAG, "0"))
            tb = Fraction(stream.time_base)
            own = [int(p.pts) for p in seg.demux(stream) if _usable(p)]
            lowest = min(own, default=0)
            time_bases.append(tb)
            # segment ticks → input ticks (segments use the input's time base; rescale if a muxer changed it)
            stamps += [first - shift + round((p - lowest) * tb / in_tb) for p in own]
    ordered = sorted(stamps)
    delay = max((o - p for o, p in zip(ordered, stamps)), default=0)
    order = 0
    last_dts: int | None = None
    for path, tb in zip(paths, time_bases):
        with av.open(str(path)) as seg:
            stream = seg.streams.video[0]
            for packet in seg.demux(stream):
                if not _usable(packet):
                    continue
                pts = stamps[order]
                dts = ordered[order] - delay
                if last_dts is not None and dts <= last_dts:  # two frames rounded onto one tick
                    dts = min(last_dts + 1, pts)
                last_dts = dts
                if packet.duration:  # a duration left in the segment's ticks would stretch the stream's length
                    packet.duration = max(1, round(packet.duration * tb / in_tb))
                packet.pts, packet.dts, packet.time_base = pts, dts, in_tb  # the muxer rescales to its own
                packet.stream = out_stream
                order += 1
                yield float(dts * in_tb), order, packet


def _audio_packets(source: Path, index: int, out_stream: Any, t0: float, t1: float | None,
                   encoder: Any, resampler: av.AudioResampler | None) -> Iterator[tuple[float, int, av.Packet]]:
    """Packets of audio stream ``index`` of the source within [t0, t1), shifted to start at t0."""
    order = 0
    with av.open(str(source)) as src:
        stream: Any = src.streams.audio[index]
        tb = Fraction(stream.time_base)
        if t0 > 0:
            src.seek(int(t0 / tb), stream=stream, backward=True)
        offset = round(t0 / tb)
        try:
            for packet in src.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                t = float(packet.pts * tb)
                if t < t0 - 1e-6:
                    continue
                if t1 is not None and t >= t1:
                    break
                if encoder is None:
                    packet.pts -= offset
                    packet.dts = (packet.dts if packet.dts is not None else packet.pts + offset) - offset
                    packet.stream = out_stream
                    order += 1
                    yield float(packet.dts * tb), order, packet
                    continue
                for frame in packet.decode():
                    frame.pts = None
                    for rs in resampler.resample(frame) if resampler else [frame]:
                        for out in encoder.encode(rs):
                            out.stream = out_stream
                            order += 1
                            yield float(out.pts * out.time_base) if out.pts is not None else t - t0, order, out
        except av.error.FFmpegError:
            pass  # a damaged tail: the audio read so far stands
        if encoder is not None:
            for out in encoder.encode(None):
                out.stream = out_stream
                order += 1
                yield float(out.pts * out.time_base) if out.pts is not None else 1e9, order, out


def concat_segments(
    segments: Sequence[Path], output: Path, info: VideoInfo, source: Path | None, *, first_frame: int = 0,
    end_frame: int | None = None, skip_audio: bool = False,
) -> MuxReport:
    """Write ``output`` from segment files (in order) and the source's audio streams.

    Timestamps are shifted so that ``first_frame`` of the source starts the output when a trim is asked
    for; audio is cut to the same range.
    """
    suffix = output.suffix.lower()
    if suffix not in CONTAINERS:
        raise InputError(f"cannot write {output.name!r}: use .mp4, .mov, .mkv or .webm")
    fmt = CONTAINERS[suffix][0]
    end_frame = info.frames if end_frame is None else end_frame
    trimmed = first_frame > 0 or end_frame < info.frames
    shift = info.pts[first_frame] if first_frame > 0 else 0
    t0 = float((info.pts[first_frame] - info.pts[0]) * info.time_base) if first_frame > 0 else 0.0
    t1 = info.seconds(end_frame) if end_frame < info.frames else None
    report = MuxReport()
    options = {"movflags": "faststart"} if fmt in ("mp4", "mov") else {}
    with av.open(str(segments[0])) as first:
        template = first.streams.video[0]
        out = av.open(str(output), "w", format=fmt, options=options)
        try:
            vout = out.add_stream_from_template(template)
            vout.time_base = info.time_base
            if info.rotation:
                vout.set_display_rotation(info.rotation)
            streams = [_segment_packets([Path(s) for s in segments], vout, info.time_base, shift)]
            if source is not None and not skip_audio and info.audio_streams and not info.is_sequence:
                streams += _audio_streams(source, out, fmt, t0, t1 if trimmed else None, report)
            for _, _, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
                if packet.stream is vout:
                    report.frames += 1
                out.mux(packet)
        finally:
            out.close()
    return report


def _audio_streams(source: Path, out: av.container.OutputContainer, fmt: str, t0: float, t1: float | None,
                   report: MuxReport) -> list[Iterator[tuple[float, int, av.Packet]]]:
    readers = []
    with av.open(str(source)) as src:
        for index, stream in enumerate(src.streams.audio):
            name = stream.codec_context.name
            if fmt == "matroska" or name in AUDIO_COPY.get(fmt, set()):
                astream: Any = out.add_stream_from_template(stream)
                astream.metadata.update(stream.metadata)
                readers.append(_audio_packets(source, index, astream, t0, t1, None, None))
                report.audio_copied += 1
                continue
            codec = AUDIO_FALLBACK.get(fmt, "aac")
            rate = 48000 if codec == "libopus" else (stream.codec_context.sample_rate or 48000)
            astream = out.add_stream(codec, rate=rate)
            astream.layout = stream.codec_context.layout
            fmt_name = astream.codec_context.codec.audio_formats[0].name
            resampler = av.AudioResampler(format=fmt_name, layout=stream.codec_context.layout, rate=rate,
                                          frame_size=astream.codec_context.frame_size or None)
            readers.append(_audio_packets(source, index, astream, t0, t1, astream.codec_context, resampler))
            report.audio_reencoded += 1
    return readers
