"""swapface: face swapping for images and videos.

The friendly verbs live in :mod:`swapface.api`; they are re-exported here lazily so that
``import swapface`` stays fast and loads no model.
"""

from __future__ import annotations

from typing import Any

from swapface.errors import InputError, JobError, ModelError, SwapfaceError

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "JobError",
    "ModelError",
    "Pipeline",
    "SwapfaceError",
    "__version__",
    "compare_faces",
    "detect_faces",
    "swap_image",
    "swap_video",
]

_API = {"swap_image", "swap_video", "detect_faces", "compare_faces"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from swapface import api

        return getattr(api, name)
    if name == "Pipeline":
        from swapface.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
