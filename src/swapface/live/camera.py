"""``swapface live --camera``: a local camera (OpenCV) swapped into a virtual camera (pyvirtualcam) and/or a file.

A reader thread keeps only the camera's newest frame, so when swapping is slower than the camera, frames
are skipped instead of piling up: what leaves is always the latest face, a frame's time behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from swapface.errors import InputError
from swapface.live.engine import LiveEngine

VIRTUAL_CAMERA_HELP = ("no virtual camera device was found: on Linux install v4l2loopback "
                       "(sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback exclusive_caps=1), "
                       "on Windows or macOS install OBS Studio and start its Virtual Camera once (or Unity Capture)")
PYVIRTUALCAM_HELP = "the virtual camera needs pyvirtualcam: pip install 'swapface[virtualcam]'"


def open_camera(camera: str, width: int, height: int, fps: float) -> cv2.VideoCapture:
    """The camera by index ("0") or a video file / stream URL; InputError when it cannot be opened or read."""
    target: int | str = int(camera) if camera.isdigit() else camera
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its warnings would bury our one line
    capture = cv2.VideoCapture(target)
    if isinstance(target, int):
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
    if not capture.isOpened() or not capture.grab():
        capture.release()
        raise InputError(f"cannot open camera {camera!r}: check that it is connected and not used by another program")
    return capture


def open_virtual_camera(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam camera, or InputError saying what to install (the package, or a device driver)."""
    try:
        import pyvirtualcam
    except ImportError:
        raise InputError(PYVIRTUALCAM_HELP) from None
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except RuntimeError:
        raise InputError(VIRTUAL_CAMERA_HELP) from None


class NewestFrame:
    """Reads a capture in a thread and keeps only the newest frame (RGB) and when it was taken."""

    def __init__(self, capture: cv2.VideoCapture, paced_fps: float | None = None) -> None:
        self.capture = capture
        self.paced_fps = paced_fps  # a file plays at this rate, as a camera would deliver it
        self.ended = threading.Event()
        self.read = 0
        self._cond = threading.Condition()
        self._frame: tuple[float, np.ndarray] | None = None
        self._thread = threading.Thread(target=self._run, name="live-camera", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self.ended.is_set():
            if self.paced_fps:
                time.sleep(max(0.0, started + self.read / self.paced_fps - time.monotonic()))
            ok, bgr = self.capture.read()
            if not ok:
                break
            self.read += 1
            with self._cond:
                self._frame = (time.monotonic(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                self._cond.notify()
        self.ended.set()
        with self._cond:
            self._cond.notify_all()

    def take(self, timeout: float = 2.0) -> tuple[float, np.ndarray] | None:
        """The newest unseen frame (waiting for one); None once the camera has ended."""
        with self._cond:
            if self._frame is None and not self.ended.is_set():
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
        return frame

    def stop(self) -> None:
        self.ended.set()
        self._thread.join(timeout=5)
        self.capture.release()


@dataclass
class CameraRunStats:
    """What a camera run did: frames read from the camera, swapped and written, seconds, latency percentiles."""

    read: int
    swapped: int
    seconds: float
    latency_ms_p50: float
    latency_ms_p90: float

    @property
    def fps(self) -> float:
        return self.swapped / self.seconds if self.seconds > 0 else 0.0


def run_camera(engine: LiveEngine, frames: NewestFrame, outputs: Sequence[Callable[[np.ndarray], None]], *,
               max_frames: int | None = None, stop: threading.Event | None = None) -> CameraRunStats:
    """Swap the newest camera frame and hand it to every output until the camera ends, ``stop`` or ``max_frames``."""
    stop = stop or threading.Event()
    latencies: list[float] = []
    started = time.monotonic()
    swapped = 0
    while not stop.is_set() and (max_frames is None or swapped < max_frames):
        taken = frames.take()
        if taken is None:
            if frames.ended.is_set():
                break
            continue
        taken_at, rgb = taken
        out = engine.process(rgb)
        for output in outputs:
            output(out)
        latencies.append((time.monotonic() - taken_at) * 1000)
        swapped += 1
    seconds = time.monotonic() - started
    p50, p90 = (np.percentile(latencies, [50, 90]) if latencies else (0.0, 0.0))
    return CameraRunStats(frames.read, swapped, seconds, float(p50), float(p90))
