"""YUV4MPEG2 (.y4m) clips: the format Chromium's fake camera plays (``--use-file-for-fake-video-capture``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def write_y4m(path: str | Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames (all one size, even sides) as a 4:2:0 y4m clip; returns the path."""
    path = Path(path)
    with open(path, "wb") as out:
        size = None
        for rgb in frames:
            h, w = rgb.shape[:2]
            if size is None:
                if w % 2 or h % 2:
                    raise ValueError("y4m frames need even width and height")
                size = (w, h)
                out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif (w, h) != size:
                raise ValueError("every y4m frame must have the first frame's size")
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path
