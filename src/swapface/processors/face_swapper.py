"""Processor ``face_swapper``: the built-in mesh swapper, or an ONNX swapper from the model catalogue."""

from __future__ import annotations

from swapface.options import SwapOptions
from swapface.processors.base import FrameProcessor


def build(options: SwapOptions) -> FrameProcessor:
    """The swapper ``options.face_swapper_model`` names (options it cannot honour are refused first)."""
    from swapface.validation import check_swapper_options

    check_swapper_options(options)
    if options.face_swapper_model == "mesh":
        from swapface.processors.mesh_swapper import MeshSwapper

        return MeshSwapper(options)
    if options.face_swapper_model == "mesh3d":
        from swapface.processors.mesh3d_swapper import Mesh3DSwapper

        return Mesh3DSwapper(options)
    from swapface.processors.onnx_swapper import build as build_onnx

    return build_onnx(options)
