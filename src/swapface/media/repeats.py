"""Frames that repeat an earlier one: a pulldown's doubled frames, a camera's duplicates in low light.

Such a frame gets the output of the frame it repeats. Swapped afresh, it moved a little where nothing in the
picture moves: the temporal smoothing was still catching up with the motion before it.
"""

from __future__ import annotations

import cv2
import numpy as np

REPEAT_SCALE = 0.25  # frames are compared as grey copies at this scale, where compression noise averages out
REPEAT_MEAN = 0.35  # grey levels: the most mean change a repeat shows (a compressed clip's pulldown repeats
# change 0.04-0.27; consecutive frames of carphone, a man talking in a car, 0.8 and up)
REPEAT_BLOCK = 2.0  # grey levels: the most any 8 × 8 block of the copy (32 × 32 frame pixels) changes on average,
# so a small change in a still frame (a mouth opening, a blink) is never taken for a repeat
BLOCK = 8


def motion_thumbnail(frame: np.ndarray) -> np.ndarray:
    """The small float32 grey copy of an RGB frame that :func:`repeats` compares."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    size = (max(round(grey.shape[1] * REPEAT_SCALE), 1), max(round(grey.shape[0] * REPEAT_SCALE), 1))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def repeats(earlier: np.ndarray | None, current: np.ndarray) -> bool:
    """Whether a frame (its thumbnail ``current``) repeats an earlier one (``earlier``): its mean change and
    every block's stay within compression noise."""
    if earlier is None or earlier.shape != current.shape:
        return False
    change = cv2.absdiff(earlier, current)
    if float(change.mean()) > REPEAT_MEAN:
        return False
    h, w = change.shape
    blocks = cv2.resize(change, (max(w // BLOCK, 1), max(h // BLOCK, 1)), interpolation=cv2.INTER_AREA)
    return float(blocks.max()) <= REPEAT_BLOCK
