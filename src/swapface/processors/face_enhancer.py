"""Processor ``face_enhancer``: GFPGAN, GPEN-BFR, CodeFormer (fidelity weight) or RestoreFormer++ on each face, blended.

As FaceFusion: the crop is aligned on the detector's five points, and pasted back under a box mask
(the user's blur, zero padding) combined with the occlusion mask when ``occlusion`` is among the mask
types; the swapper's other masks (padding, regions) do not apply to the enhancer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swapface.errors import ModelError
from swapface.faces.face import Face
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype, run_batched
from swapface.models.templates import from_tensor, to_tensor, warp_face
from swapface.processors.base import SourceIdentity
from swapface.processors.masks import OcclusionMasker, box_mask, paste_back
from swapface.processors.onnx_swapper import NeuralAligner


class FaceEnhancer:
    """Restores faces on their ffhq_512 crop, pastes them back with the face mask and blends with the frame."""

    name = "face_enhancer"
    needs_source = False
    whole_frame = False

    def __init__(self, options: Any, models_dir: Path | None = None) -> None:
        self.model = LazyModel(options.face_enhancer_model, options, models_dir, task="face_enhancer")
        self.blend = options.face_enhancer_blend / 100.0
        self.weight = float(options.face_enhancer_weight)
        self.batch_size = int(options.execution_batch_size)
        self.aligner = NeuralAligner(options, models_dir)
        self.blur = float(getattr(options, "face_mask_blur", 0.3))
        types = tuple(getattr(options, "face_mask_types", ("box",)))
        self.occlusion = OcclusionMasker(options, models_dir) if "occlusion" in types else None

    def enhance_crops(self, crops: np.ndarray) -> np.ndarray:
        """Restored crops (N×512×512×3 RGB) for aligned crops."""
        session = self.model.session
        inputs = session.get_inputs()
        names = [i.name for i in inputs]
        image = "input" if "input" in names else names[0]  # every input fed by name, as FaceFusion does
        x = to_tensor(crops, self.model.contract, input_dtype(session, names.index(image)))
        fixed = {}
        for extra in inputs:
            if extra.name == image:
                continue
            if extra.name != "weight":
                raise ModelError(f"model {self.model.entry.name!r} has an input {extra.name!r} swapface does not know how to feed")
            shape = [d if isinstance(d, int) else 1 for d in extra.shape]  # CodeFormer's fidelity weight (float64)
            fixed[extra.name] = np.full(shape, self.weight, np.float64)
        out = run_batched(session, {image: x}, self.batch_size, fixed)[0]
        return from_tensor(out, self.model.contract)

    def process_batch(self, frames: Sequence[np.ndarray], faces: Sequence[list[Face]]) -> list[np.ndarray]:
        """Enhance the faces of several frames with batched inference."""
        c = self.model.contract
        jobs = [(i, *warp_face(frame, self.aligner.points(frame, f), c.template, c.size))
                for i, (frame, ff) in enumerate(zip(frames, faces)) for f in ff]
        outs = [f.copy() for f in frames]
        if not jobs:
            return outs
        crops = np.stack([j[1] for j in jobs])
        restored = self.enhance_crops(crops)
        masks = np.repeat(box_mask(c.size, self.blur)[None], len(crops), 0)  # zero padding, as FaceFusion
        if self.occlusion is not None:
            masks = np.minimum(masks, self.occlusion.masks(crops))
        for (i, _, affine), crop, mask in zip(jobs, restored, masks):
            outs[i] = paste_back(outs[i], crop, affine, mask * self.blend)
        return outs

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """Enhance the given faces of one frame."""
        return self.process_batch([frame], [faces])[0]


def build(options: Any) -> FaceEnhancer:
    """Factory of the ``face_enhancer`` processor."""
    return FaceEnhancer(options)
