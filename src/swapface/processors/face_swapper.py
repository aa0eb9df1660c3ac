"""Processor ``face_swapper``: the built-in mesh swapper, or an ONNX swapper from the model catalogue."""

from __future__ import annotations

from swapface.options import SwapOptions
from swapface.processors.base import FrameProcessor


def build(options: SwapOptions) -> FrameProcessor:
    """The swapper ``options.face_swapper_model`` names."""
    if options.face_swapper_model == "mesh":
        from swapface.processors.mesh_swapper import MeshSwapper

        return MeshSwapper(options)
    from swapface.processors.onnx_swapper import build as build_onnx

    return build_onnx(options)
