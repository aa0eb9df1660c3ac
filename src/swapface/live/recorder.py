"""Recording a live stream to MP4 (only when asked for), at the times frames were shown, marked as synthetic."""

from __future__ import annotations

import logging
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from swapface.errors import InputError

log = logging.getLogger("swapface.live")
BACKLOG = 60  # frames waiting for the encoder; beyond this a frame is left out of the recording (counted)


class Recorder:
    """Encodes swapped frames in a thread of its own (the stream never waits for it); ``close`` marks the file."""

    def __init__(self, path: str | Path, options: Any, *, quality_crf: int = 23) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise InputError("--record writes a video: give a path ending in .mp4, .mov or .mkv")
        if not self.path.parent.is_dir():
            raise InputError(f"cannot record to {self.path}: the folder does not exist")
        self.options = options
        self.crf = quality_crf
        self.frames = 0
        self.skipped = 0
        self._queue: queue.Queue[tuple[float, np.ndarray] | None] = queue.Queue(BACKLOG)
        self._t0: float | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._encode, name="live-recorder", daemon=True)
        self._thread.start()

    def write(self, rgb: np.ndarray) -> None:
        """Add a frame, stamped with the time now."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        try:
            self._queue.put_nowait((now - self._t0, rgb))
        except queue.Full:
            self.skipped += 1

    def _encode(self) -> None:
        container = stream = None
        last_pts = -1
        try:
            while (item := self._queue.get()) is not None:
                seconds, rgb = item
                if container is None:
                    container = av.open(str(self.path), "w")
                    stream = container.add_stream("libx264", rate=30, options={"crf": str(self.crf), "preset": "veryfast"})
                    stream.width, stream.height = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2
                    stream.pix_fmt = "yuv420p"
                    stream.codec_context.time_base = Fraction(1, 1000)
                assert stream is not None
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: stream.height, : stream.width]),
                                                   format="rgb24")
                frame.pts = max(round(seconds * 1000), last_pts + 1)
                frame.time_base = Fraction(1, 1000)
                last_pts = frame.pts
                for packet in stream.encode(frame):
                    container.mux(packet)
                self.frames += 1
            if container is not None and stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:  # reported by close(), on the caller's thread
            self._error = exc
        finally:
            if container is not None:
                container.close()

    def close(self) -> int:
        """Finish the file and mark it as synthetic; returns the frames recorded (0: no file was written)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise InputError(f"the recording failed: {self._error}")
        if self.frames:
            from swapface.provenance import finalize_output

            finalize_output(self.path, self.options)
        if self.skipped:
            log.warning("the recorder fell behind; %d frame(s) are not in the recording", self.skipped)
        return self.frames
