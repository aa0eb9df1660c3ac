"""Every user-facing swap option, defined once.

The CLI flag ``--face-selector-mode``, the API field ``face_selector_mode`` and the Python keyword
``face_selector_mode`` all come from the fields below, so names, defaults, ranges and help texts
never drift apart. Unknown names are refused (``extra="forbid"``).
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from swapface.errors import InputError

FaceSelectorMode = Literal["one", "many", "reference"]
#: Swapper models built in (no downloaded weights): the mesh warp, and the 3D-aware mesh renderer.
BUILTIN_SWAPPERS = ("mesh", "mesh3d")
FaceSelectorOrder = Literal[
    "large-small", "small-large", "left-right", "right-left", "top-bottom", "bottom-top", "best-worst", "worst-best"
]
OnOff = Literal["on", "off"]
MASK_TYPES = ("box", "occlusion", "area", "region")
MASK_AREAS = ("upper-face", "lower-face", "mouth")
MASK_REGIONS = ("skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "glasses", "nose", "mouth",
                "upper-lip", "lower-lip")
PIXEL_BOOSTS = (128, 256, 384, 512, 768, 1024)
MAX_OUTPUT_FPS = 240.0
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 16, 8192
_RESOLUTION = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", re.IGNORECASE)
#: options that only a video target can honour (an image target refuses them)
VIDEO_ONLY_OPTIONS = ("output_video_fps", "output_video_resolution")


class SwapOptions(BaseModel):
    """What to swap and how: the options shared by the CLI, the HTTP API and the Python API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # selection
    face_selector_mode: FaceSelectorMode = Field(
        "one", description="one = the largest face, many = every face, reference = faces of the reference person"
    )
    face_selector_order: FaceSelectorOrder = Field(
        "large-small", description="Order of the faces in a frame: which one 'one' takes, which a position counts"
    )
    reference_face_position: int = Field(
        0, ge=0, description="With --reference-frame-number: which face of that frame (in selector order, from 0)"
    )
    reference_frame_number: int | None = Field(
        None, ge=0, description="Take the reference person from this frame of the target instead of a photo"
    )
    reference_face_distance: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="Largest identity distance at which a face counts as the reference person "
        "(default: the recogniser's own threshold)",
    )
    # processors
    processors: tuple[str, ...] = Field(
        ("face_swapper",), min_length=1, description="Frame processors run in order (face_swapper, face_debugger, ...)"
    )
    face_swapper_model: str = Field(
        "mesh3d", description="Swapper model: mesh3d or mesh (built in; mesh3d renders with the 3D mesh, relights, "
        "keeps backdrop and hair out and honours mask regions; mesh is a plain 2D warp, faster) or an ONNX swapper")
    face_swapper_pixel_boost: int = Field(
        128, description="ONNX swappers: crop resolution, a multiple of the model's size up to 8× (inswapper: 128 to 1024)")
    face_swapper_weight: float = Field(1.0, ge=0.0, le=1.0, description="Strength of the swap, 0..1")
    face_shape_transfer: float = Field(
        0.0, ge=0.0, le=1.0,
        description="mesh3d swapper: how far the target's jaw, chin and cheek outline moves to the source's, 0..1",
    )
    face_feature_transfer: float = Field(
        0.5, ge=0.0, le=1.0,
        description="mesh3d swapper: how far the target's eyes, nose and mouth move to the places and sizes the "
        "source's have in its face (their expression stays the target's), 0..1",
    )
    face_enhancer_model: str = Field("gfpgan_1.4", description="Face enhancer model")
    face_enhancer_blend: int = Field(80, ge=0, le=100, description="Face enhancer blend with the frame, percent")
    face_enhancer_weight: float = Field(0.5, ge=0.0, le=1.0, description="CodeFormer fidelity weight")
    frame_enhancer_model: str = Field("real_esrgan_x2", description="Frame enhancer model")
    frame_enhancer_blend: int = Field(80, ge=0, le=100, description="Frame enhancer blend with the frame, percent")
    # analysis
    face_detector_model: str = Field("mediapipe", description="Face detector: mediapipe (built in), yolo_face, scrfd, retinaface, yunet")
    face_detector_angles: tuple[int, ...] = Field(
        (0,), description="ONNX detectors: also search the frame turned by these angles (0, 90, 180, 270)")
    face_landmarker_model: str = Field(
        "none", description="Neural models: refine the detector's five points with 68 landmarks (none, 2dfan4)")
    face_detector_score: float = Field(0.5, ge=0.0, le=1.0, description="Smallest detection score kept")
    face_recognizer_model: str = Field("dlib", description="Identity embedder: dlib (built in) or arcface_w600k_r50")
    # masks and blending
    face_mask_types: tuple[str, ...] = Field(("box",), description="Masks combined for pasting: box, occlusion, area, region")
    face_mask_areas: tuple[str, ...] = Field(
        MASK_AREAS, description="Face areas the area mask keeps (convex hulls of 68 landmarks)")
    face_mask_regions: tuple[str, ...] = Field(
        ("skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "nose", "mouth", "upper-lip", "lower-lip"),
        description="Face-parsing regions used by the region mask",
    )
    face_occluder_model: str = Field("xseg_1", description="Occlusion mask model: xseg_1, xseg_2, xseg_3")
    face_parser_model: str = Field("bisenet_resnet_34", description="Region mask model: bisenet_resnet_34, bisenet_resnet_18")
    face_mask_blur: float = Field(0.3, ge=0.0, le=1.0, description="Feathering of the face mask edge, 0..1")
    face_mask_padding: tuple[int, int, int, int] = Field(
        (0, 0, 0, 0), description="Mask padding in percent: 1 to 4 values (all; top-bottom left-right; "
        "top left-right bottom; top right bottom left)"
    )
    color_transfer: OnOff = Field("on", description="Match the swapped face's colours to the target's skin")
    # output
    output_image_quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of image outputs")
    output_video_encoder: str = Field("libx264", description="Video encoder: libx264, libx265, libvpx-vp9, h264_nvenc")
    output_video_quality: int = Field(
        80, ge=1, le=100, description="Video quality, 1..100, mapped to CRF as FaceFusion does (51 − 0.51 × quality: 80 is CRF 10)")
    output_video_preset: str = Field("veryfast", description="Encoder preset (ultrafast .. veryslow)")
    output_video_fps: float | None = Field(
        None, description=f"Frame rate of a video output, 1..{MAX_OUTPUT_FPS:g}: frames are dropped or repeated by "
        "timestamp, so duration and audio stay in sync (default: the target's)")
    output_video_resolution: str | None = Field(
        None, description="Size WxH of a video output as displayed, e.g. 1280x720: the whole frame is scaled to it, "
        f"even numbers {MIN_OUTPUT_SIDE}..{MAX_OUTPUT_SIDE} (default: the target's)")
    trim_frame_start: int | None = Field(None, ge=0, description="First frame to process")
    trim_frame_end: int | None = Field(None, ge=1, description="Frame after the last one to process")
    skip_audio: bool = Field(False, description="Drop the audio streams")
    chunk_seconds: float = Field(10.0, gt=0.0, le=3600.0, description="Length of a video chunk (unit of resume and scale-out)")
    # execution
    execution_providers: tuple[str, ...] = Field(("cpu",), description="ONNX Runtime providers: cpu, cuda, tensorrt, rocm, directml, openvino, coreml")
    execution_device_ids: tuple[int, ...] = Field(
        (0,), description="GPU device ids; with several, each model runs on one of them (chosen by its name)")
    execution_batch_size: int = Field(1, ge=1, le=256, description="Face crops per inference batch")
    execution_precision: Literal["auto", "fp32", "fp16"] = Field(
        "auto", description="ONNX model precision: auto (fp16 on cuda/tensorrt, fp32 on cpu), fp32 or fp16"
    )
    # responsibility
    label_output: bool = Field(False, description="Draw a visible 'AI-generated' label on the output")
    mark_output: bool = Field(True, description="Mark the output as synthetic (metadata); off only for local use")


    @field_validator("face_swapper_pixel_boost")
    @classmethod
    def _known_boost(cls, value: int) -> int:
        if value not in PIXEL_BOOSTS:
            raise ValueError(f"must be one of {', '.join(map(str, PIXEL_BOOSTS))}")
        return value

    @field_validator("face_mask_padding", mode="before")
    @classmethod
    def _padding_like_css(cls, value: object) -> object:
        """1 to 4 values, as FaceFusion (and CSS) take them: 10 means 10 on every side."""
        if isinstance(value, (int, float, str)):
            value = (value,)
        if isinstance(value, (list, tuple)):
            values = list(value)
            if not 1 <= len(values) <= 4:
                raise ValueError("give 1 to 4 values (top right bottom left)")
            if len(values) == 1:
                values *= 4
            elif len(values) == 2:
                values = [values[0], values[1], values[0], values[1]]
            elif len(values) == 3:
                values = [values[0], values[1], values[2], values[1]]
            return tuple(values)
        return value

    @field_validator("face_mask_padding")
    @classmethod
    def _padding_range(cls, value: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if any(not 0 <= v <= 100 for v in value):
            raise ValueError("each value must be 0..100 (percent)")
        return value

    @field_validator("face_mask_types")
    @classmethod
    def _known_mask_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("face mask type", value, MASK_TYPES)

    @field_validator("face_mask_areas")
    @classmethod
    def _known_areas(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("face mask area", value, MASK_AREAS)

    @field_validator("face_mask_regions")
    @classmethod
    def _known_regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("face mask region", value, MASK_REGIONS)

    @field_validator("output_video_fps")
    @classmethod
    def _sane_fps(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 1.0 <= value <= MAX_OUTPUT_FPS):
            raise ValueError(f"must be 1..{MAX_OUTPUT_FPS:g} frames per second, not {value:g}")
        return value

    @field_validator("output_video_resolution")
    @classmethod
    def _resolution_wxh(cls, value: str | None) -> str | None:
        """``WxH`` with even sides (4:2:0 video needs them) in a sane range; kept as written, normalised."""
        if value is None:
            return None
        match = _RESOLUTION.fullmatch(value)
        if match is None:
            raise ValueError(f"write it as WIDTHxHEIGHT, e.g. 1280x720, not {value[:40]!r}")
        width, height = int(match[1]), int(match[2])
        if not all(MIN_OUTPUT_SIDE <= side <= MAX_OUTPUT_SIDE for side in (width, height)):
            raise ValueError(f"each side must be {MIN_OUTPUT_SIDE}..{MAX_OUTPUT_SIDE} pixels, not {width}x{height}")
        if width % 2 or height % 2:
            raise ValueError(f"both sides must be even (4:2:0 video), not {width}x{height}")
        return f"{width}x{height}"

    @field_validator("trim_frame_end")
    @classmethod
    def _trim_in_order(cls, end: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("trim_frame_start")
        if start is not None and end is not None and end <= start:
            raise ValueError(f"must be after trim_frame_start ({start})")
        return end


def _known(what: str, values: tuple[str, ...], choices: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    return values


def option_choices(name: str) -> tuple[str, ...] | None:
    """The values an option takes where they are a known list (help texts, the web page)."""
    if name == "face_mask_types":
        return MASK_TYPES
    if name == "face_mask_regions":
        return MASK_REGIONS
    if name == "face_mask_areas":
        return MASK_AREAS
    if name == "face_swapper_pixel_boost":
        return tuple(map(str, PIXEL_BOOSTS))
    if name == "execution_providers":
        return ("cpu", "cuda", "tensorrt")
    if name == "processors":
        return ("face_swapper", "face_enhancer", "frame_enhancer", "face_debugger", "label")
    tasks: dict[str, tuple[tuple[str, ...], str]] = {
        "face_swapper_model": (BUILTIN_SWAPPERS, "face_swapper"), "face_enhancer_model": ((), "face_enhancer"),
        "frame_enhancer_model": ((), "frame_enhancer"), "face_detector_model": (("mediapipe",), "face_detector"),
        "face_recognizer_model": (("dlib",), "face_recognizer")}
    if name in tasks:
        from swapface.models.catalogue import CATALOGUE

        builtin, task = tasks[name]
        names = [e.name for e in CATALOGUE.values() if e.task == task and not e.builtin]
        return tuple(list(builtin) + names)
    return None


def parse_options(values: dict[str, object]) -> SwapOptions:
    """Build :class:`SwapOptions` from loose values, turning validation errors into one clear InputError."""
    try:
        return SwapOptions.model_validate(values)
    except ValidationError as exc:
        problems, fields = [], set()
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "options"
            problems.append(f"{where}: {err['msg']}")
            if err["type"] == "value_error" and err["loc"]:  # our own checks between fields name their field
                fields.add(str(err["loc"][0]))
        error = InputError("invalid option(s): " + "; ".join(problems), code="bad_option")
        if len(fields) == 1 and len(problems) == 1:
            error.field = fields.pop()  # type: ignore[attr-defined]  # the API names the field in its answer
        raise error from None


def output_size(options: SwapOptions) -> tuple[int, int] | None:
    """(width, height) of ``output_video_resolution`` as displayed, None when the target's size is kept."""
    if options.output_video_resolution is None:
        return None
    width, height = options.output_video_resolution.split("x")
    return int(width), int(height)


def option_help(name: str) -> str:
    """The one help text of an option, for CLI flags and API docs."""
    return SwapOptions.model_fields[name].description or ""
