"""The frame-processor contract: every processor is an object with the same small entry points, so a chain is a list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from swapface.faces.face import Face


@dataclass(frozen=True)
class SourceIdentity:
    """The person put into targets: each source photo (RGB) with its main face, and their mean identity."""

    images: tuple[np.ndarray, ...]
    faces: tuple[Face, ...]
    embedding: np.ndarray


@runtime_checkable
class FrameProcessor(Protocol):
    """Turns a frame into a frame, given the target faces chosen in it and the source identity.

    ``faces`` were analysed on the original frame and carry track ids in video; processors must
    not change the frame outside the faces' regions unless that is their job (frame enhancers).
    A processor that keeps per-clip state (smoothing by track) also defines ``reset()``, which the
    pipeline calls when a new clip or chunk begins.
    """

    name: str

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray: ...
