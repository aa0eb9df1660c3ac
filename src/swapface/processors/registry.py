"""Processor names → factories. Factories are imported lazily so unused processors load nothing."""

from __future__ import annotations

import importlib

from swapface.errors import InputError
from swapface.options import SwapOptions
from swapface.processors.base import FrameProcessor

PROCESSOR_FACTORIES: dict[str, str] = {
    "face_swapper": "swapface.processors.face_swapper:build",
    "face_debugger": "swapface.processors.face_debugger:build",
    "face_enhancer": "swapface.processors.face_enhancer:build",
    "frame_enhancer": "swapface.processors.frame_enhancer:build",
    "label": "swapface.provenance.label:build",
}


def build_processor(name: str, options: SwapOptions) -> FrameProcessor:
    """Build the processor called ``name`` for these options, or say which names exist."""
    target = PROCESSOR_FACTORIES.get(name)
    if target is None:
        raise InputError(f"unknown processor {name!r}; choose from {', '.join(sorted(PROCESSOR_FACTORIES))}")
    module_name, func = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(f"processor {name!r} is not available in this installation") from None
    return getattr(module, func)(options)


def build_chain(options: SwapOptions) -> list[FrameProcessor]:
    """The processor chain the options ask for, in order; a visible label, when asked for, comes last."""
    chain = [build_processor(name, options) for name in options.processors]
    if options.label_output and "label" not in options.processors:
        chain.append(build_processor("label", options))
    return chain
