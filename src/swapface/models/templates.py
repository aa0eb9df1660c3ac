"""Five-point alignment templates and the crop/tensor conversions every face model's contract describes."""

from __future__ import annotations

import cv2
import numpy as np

from swapface.geometry.transform import fit_similarity
from swapface.models.catalogue import Contract

#: Normalised (x, y) of left eye, right eye, nose tip, left and right mouth corner (image left first).
TEMPLATES: dict[str, np.ndarray] = {
    name: np.array(points, np.float32).reshape(5, 2)
    for name, points in {
        "arcface_112_v1": [.35473214, .45658929, .64526786, .45658929, .50000000, .61154464,
                           .37913393, .77687500, .62086607, .77687500],
        "arcface_112_v2": [.34191607, .46157411, .65653393, .45983393, .50022500, .64050536,
                           .37097589, .82469196, .63151696, .82325089],
        "arcface_128": [.36167656, .40387734, .63696719, .40235469, .50019687, .56044219,
                        .38710391, .72160547, .61507734, .72034453],
        "ffhq_512": [.37691676, .46864664, .62285697, .46912813, .50123859, .61331904,
                     .39308822, .72541100, .61150205, .72490465],
        "mtcnn_512": [.36562865, .46733799, .63305391, .46585885, .50019127, .61942959,
                      .39032951, .77598822, .61178945, .77476328],
    }.items()
}


def alignment_affine(keypoints: np.ndarray, template: str, size: int) -> np.ndarray:
    """The 2×3 similarity (4-DoF) taking a face's five keypoints onto ``template × size`` (least squares on all five)."""
    return fit_similarity(np.asarray(keypoints, np.float32), TEMPLATES[template] * size)


def warp_face(frame: np.ndarray, keypoints: np.ndarray, template: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned ``size``×``size`` crop of a face (replicated borders) and the affine that made it."""
    m = alignment_affine(keypoints, template, size)
    crop = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA if size < 128 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, m


def to_tensor(images: np.ndarray, contract: Contract, dtype: type = np.float32) -> np.ndarray:
    """RGB uint8 images (N×H×W×3) → the model's input tensor (channel order, normalisation, layout)."""
    x: np.ndarray = np.asarray(images, np.float32)
    if contract.channels == "bgr":
        x = x[..., ::-1]
    x = (x / contract.scale - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    if contract.layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=dtype)


def from_tensor(y: np.ndarray, contract: Contract) -> np.ndarray:
    """The model's image output (N×3×H×W or N×H×W×3) → RGB uint8 images N×H×W×3."""
    y = np.asarray(y, np.float32)
    if contract.layout == "nchw":
        y = y.transpose(0, 2, 3, 1)
    if contract.channels == "bgr":
        y = y[..., ::-1]
    y = np.clip(y * contract.out_std + contract.out_mean, 0.0, 1.0) * 255.0
    return np.rint(y).astype(np.uint8)
