"""A visible "AI-generated" label, drawn as the last whole-frame processor when ``label_output`` is set."""

from __future__ import annotations

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.processors.base import SourceIdentity

TEXT = "AI-generated"


class LabelProcessor:
    """Draws a small, legible "AI-generated" badge in the bottom-right corner of every frame."""

    name = "label"
    whole_frame = True
    needs_source = False

    def __init__(self, text: str = TEXT) -> None:
        self.text = text

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """Return a copy of ``frame`` with the label composited (white text on a translucent dark box)."""
        h, w = frame.shape[:2]
        scale = max(0.35, min(w, h) / 900.0)
        thickness = max(1, round(scale * 2))
        (tw, th), base = cv2.getTextSize(self.text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = max(3, round(6 * scale))
        margin = max(2, round(min(w, h) * 0.015))
        x2, y2 = w - margin, h - margin
        x1, y1 = max(0, x2 - tw - 2 * pad), max(0, y2 - th - base - 2 * pad)
        out = frame.copy()
        box = out[y1:y2, x1:x2].astype(np.float32)
        out[y1:y2, x1:x2] = (box * 0.35).astype(np.uint8)  # darken the badge area for contrast
        cv2.putText(out, self.text, (x1 + pad, y2 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
        return out


def build(options: object) -> LabelProcessor:
    """Registry factory (the label has no options of its own)."""
    return LabelProcessor()
