"""Detector and embedder names → factories, imported lazily (unused models load nothing)."""

from __future__ import annotations

import importlib
from typing import Any

from swapface.errors import InputError

DETECTOR_FACTORIES: dict[str, str] = {
    "mediapipe": "swapface.faces.mediapipe:build_detector",
    "scrfd": "swapface.faces.onnx_detectors:build",
    "retinaface": "swapface.faces.onnx_detectors:build",
    "yunet": "swapface.faces.onnx_detectors:build",
    "yolo_face": "swapface.faces.onnx_detectors:build",
}

EMBEDDER_FACTORIES: dict[str, str] = {
    "dlib": "swapface.faces.dlib_embedder:build",
    "arcface_w600k_r50": "swapface.faces.arcface:build",
}


def _load(table: dict[str, str], kind: str, name: str) -> Any:
    target = table.get(name)
    if target is None:
        raise InputError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(table))}")
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def build_detector(name: str, options: Any) -> Any:
    """A FaceDetector for the name (factories take (name, options))."""
    if name == "mediapipe" and tuple(getattr(options, "face_detector_angles", (0,)) or (0,)) != (0,):
        raise InputError("face detector angles need an ONNX detector (yolo_face, scrfd, retinaface, yunet)")
    return _load(DETECTOR_FACTORIES, "face detector", name)(name, options)


def build_embedder(name: str, options: Any) -> Any:
    """A FaceEmbedder for the name (factories take (name, options))."""
    return _load(EMBEDDER_FACTORIES, "face recognizer", name)(name, options)
