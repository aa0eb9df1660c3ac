"""ArcFace (w600k_r50) identity embeddings through ONNX Runtime: 512-d, L2-normalised, cosine rule as distance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from swapface.faces.face import Face
from swapface.models.runtime import LazyModel
from swapface.models.session import input_dtype, run_batched
from swapface.models.templates import to_tensor, warp_face

#: (1 − cos) / 2 < 0.3  ⇔  ‖a − b‖ < sqrt(2 · 0.6) for L2-normalised a, b.
ARCFACE_MATCH_DISTANCE = math.sqrt(2 * 0.6)


class ArcFaceEmbedder:
    """Adds an ArcFace identity to faces from their five keypoints (aligned to the contract's template)."""

    match_distance = ARCFACE_MATCH_DISTANCE

    def __init__(self, name: str = "arcface_w600k_r50", options: Any = None, models_dir: Path | None = None) -> None:
        self.name = name
        self.model = LazyModel(name, options, models_dir, task="face_recognizer")
        self.batch_size = int(getattr(options, "execution_batch_size", 8) or 8)

    def crops(self, frame: np.ndarray, keypoints: list[np.ndarray]) -> np.ndarray:
        """Aligned crops (N×S×S×3 RGB) for a list of five-point keypoint sets."""
        c = self.model.contract
        return np.stack([warp_face(frame, k, c.template, c.size)[0] for k in keypoints])

    def raw_embeddings(self, frame: np.ndarray, keypoints: list[np.ndarray]) -> np.ndarray:
        """The network's unnormalised embeddings (N×512) — the swapper latents start from these."""
        if not keypoints:
            return np.zeros((0, 512), np.float32)
        session = self.model.session
        x = to_tensor(self.crops(frame, keypoints), self.model.contract, input_dtype(session))
        (out,) = run_batched(session, {session.get_inputs()[0].name: x}, self.batch_size)[:1]
        return out.reshape(len(keypoints), -1).astype(np.float32)

    def embed(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces with L2-normalised 512-d embeddings."""
        raw = self.raw_embeddings(frame, [f.keypoints for f in faces])
        norms = np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        return [f.with_(embedding=(e / n).astype(np.float32)) for f, e, n in zip(faces, raw, norms)]


def build(name: str, options: Any) -> ArcFaceEmbedder:
    """Factory for the embedder registry."""
    return ArcFaceEmbedder(name, options)
