"""Built-in identity embedding: dlib's 128-d face recognition ResNet (CC0), via its 5-point aligner."""

from __future__ import annotations

import numpy as np

from swapface.faces.face import Face
from swapface.models.builtin import dlib_model_path


class DlibEmbedder:
    """L2-normalised 128-d identity vectors. Two faces of one person lie closer than ``match_distance``.

    dlib's published rule is a raw-descriptor distance of 0.6; descriptors have a norm of about 1.4,
    so on the unit sphere the same rule is about 0.42.
    """

    name = "dlib"
    match_distance = 0.42

    def __init__(self) -> None:
        self._predictor = None
        self._net = None

    def _models(self):
        if self._net is None:
            import dlib

            self._predictor = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks")))
            self._net = dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1")))
        return self._predictor, self._net

    def embed(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces with ``embedding`` set."""
        if not faces:
            return []
        import dlib

        predictor, net = self._models()
        image = np.ascontiguousarray(frame)
        out = []
        for face in faces:
            x1, y1, x2, y2 = (int(round(v)) for v in face.box)
            shape = predictor(image, dlib.rectangle(x1, y1, x2, y2))
            vec = np.asarray(net.compute_face_descriptor(image, shape), np.float32)
            out.append(face.with_(embedding=vec / max(float(np.linalg.norm(vec)), 1e-12)))
        return out


def build(name: str, options: object) -> DlibEmbedder:
    """Registry factory."""
    return DlibEmbedder()
