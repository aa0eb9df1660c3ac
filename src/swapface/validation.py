"""Checks of a job's options against what this installation knows, before any work starts.

:class:`~swapface.options.SwapOptions` checks types and ranges; this checks names against the registries
(processors, models of the right task, detectors, recognisers, mask types and regions, encoders, presets,
providers) and combinations (trim range, reference mode, pixel boost for the chosen swapper). The service
calls it at submit (422 naming the field), the CLI can call it before reading any media. It reads no
files and loads no model: a model that is known but not downloaded is the worker's to report, once.
"""

from __future__ import annotations

from swapface.errors import InputError
from swapface.options import BUILTIN_SWAPPERS, VIDEO_ONLY_OPTIONS, SwapOptions

PIXEL_BOOSTS = (128, 256, 512, 1024)
_BOOST_FACTORS = (1, 2, 4)


class OptionError(InputError):
    """An option value this installation cannot honour; ``field`` names the option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", code="bad_option")
        self.field = field

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.field, str(self).split(": ", 1)[-1])


def _choose(field: str, value: object, choices: list[str] | tuple[str, ...]) -> OptionError:
    return OptionError(field, f"unknown value {str(value)[:80]!r}; choose from {', '.join(choices)}")


def _model(field: str, name: str, task: str, extra: tuple[str, ...] = ()) -> None:
    from swapface.models.catalogue import CATALOGUE

    names = sorted(n for n, e in CATALOGUE.items() if e.task == task)
    if name not in extra and name not in names:
        raise _choose(field, name, [*extra, *names])


def check_options(options: SwapOptions, *, has_reference: bool | None = None, video: bool | None = None) -> None:
    """Raise :class:`OptionError` for the first option this installation cannot honour.

    ``has_reference`` (whether a reference face photo comes with the job) and ``video`` (whether the target is
    a video) are checked when known."""
    from swapface.faces.registry import DETECTOR_FACTORIES, EMBEDDER_FACTORIES
    from swapface.media.video import ENCODERS, PRESETS
    from swapface.models.catalogue import CATALOGUE, FACE_REGIONS
    from swapface.models.session import PROVIDER_NAMES
    from swapface.processors.masks import MASK_TYPES
    from swapface.processors.registry import PROCESSOR_FACTORIES

    for name in options.processors:
        if name not in PROCESSOR_FACTORIES:
            raise _choose("processors", name, sorted(PROCESSOR_FACTORIES))
    _model("face_swapper_model", options.face_swapper_model, "face_swapper", extra=BUILTIN_SWAPPERS)
    _model("face_enhancer_model", options.face_enhancer_model, "face_enhancer")
    _model("frame_enhancer_model", options.frame_enhancer_model, "frame_enhancer")
    if options.face_detector_model not in DETECTOR_FACTORIES:
        raise _choose("face_detector_model", options.face_detector_model, sorted(DETECTOR_FACTORIES))
    if options.face_recognizer_model not in EMBEDDER_FACTORIES:
        raise _choose("face_recognizer_model", options.face_recognizer_model, sorted(EMBEDDER_FACTORIES))
    for mask in options.face_mask_types:
        if mask not in MASK_TYPES:
            raise _choose("face_mask_types", mask, MASK_TYPES)
    for region in options.face_mask_regions:
        if region not in FACE_REGIONS:
            raise _choose("face_mask_regions", region, list(FACE_REGIONS))
    if "region" in options.face_mask_types and not options.face_mask_regions:
        raise OptionError("face_mask_regions", "the region mask needs at least one region")
    if "area" in options.face_mask_types and not options.face_mask_areas:
        raise OptionError("face_mask_areas", "the area mask needs at least one area")
    check_swapper_options(options)
    if any(not 0 <= p <= 100 for p in options.face_mask_padding):
        raise OptionError("face_mask_padding", "each side is a percentage, 0..100")
    if options.output_video_encoder not in ENCODERS:
        raise _choose("output_video_encoder", options.output_video_encoder, ENCODERS)
    if video:
        from swapface.media.video import check_encoder

        try:
            check_encoder(options.output_video_encoder, ".mp4")
        except InputError as exc:
            raise OptionError("output_video_encoder", str(exc)) from None
    if video is False:
        refuse_video_options(options)
    if options.output_video_preset not in PRESETS:
        raise _choose("output_video_preset", options.output_video_preset, PRESETS)
    start, end = options.trim_frame_start, options.trim_frame_end
    if start is not None and end is not None and start >= end:
        raise OptionError("trim_frame_end", f"must be greater than trim_frame_start ({start}); got {end}")
    for provider in options.execution_providers:
        if provider not in PROVIDER_NAMES:
            raise _choose("execution_providers", provider, sorted(PROVIDER_NAMES))
    if any(device < 0 for device in options.execution_device_ids):
        raise OptionError("execution_device_ids", "device ids are 0 or more")
    _check_pixel_boost(options, CATALOGUE)
    if has_reference is not None:
        if options.face_selector_mode == "reference" and not has_reference:
            raise OptionError("face_selector_mode", "'reference' needs a reference face photo (reference_face)")
        if has_reference and options.face_selector_mode != "reference":
            raise OptionError("reference_face", "a reference face is used only with face_selector_mode 'reference'")


def refuse_video_options(options: SwapOptions, target: str = "the target") -> None:
    """An image target cannot honour the video output options: refuse them rather than ignore them."""
    for name in VIDEO_ONLY_OPTIONS:
        if getattr(options, name) is not None:
            raise OptionError(name, f"applies to video outputs only, and {target} is an image")


def check_swapper_options(options: SwapOptions) -> None:
    """The mask and shape options the chosen swapper can honour; the rest are refused (never ignored).
    Called at submit and whenever a swapper is built."""
    if "face_swapper" not in options.processors:
        return
    model = options.face_swapper_model
    extra = [m for m in options.face_mask_types if m != "box"]
    if model == "mesh" and extra:
        raise OptionError("face_mask_types", f"the built-in mesh swapper blends with its own feathered mesh mask, so "
                          f"{', '.join(extra)} would be ignored; use --face-swapper-model mesh3d for regions")
    if model == "mesh3d":
        if "area" in options.face_mask_types:
            raise OptionError("face_mask_types", "the mesh3d swapper has no area mask (its regions are its mesh's); "
                              "use box, region and occlusion")
        from swapface.geometry.face_topology import REGIONS

        unknown = [r for r in options.face_mask_regions if r not in REGIONS]
        if "region" in options.face_mask_types and unknown:
            raise OptionError("face_mask_regions", f"the mesh3d swapper's regions are {', '.join(REGIONS)}; "
                              f"{', '.join(unknown)} is not one of them")
    if options.face_shape_transfer and model != "mesh3d":
        raise OptionError("face_shape_transfer", "applies to the mesh3d swapper only (--face-swapper-model mesh3d)")
    default = SwapOptions.model_fields["face_feature_transfer"].default
    if options.face_feature_transfer != default and model != "mesh3d":
        raise OptionError("face_feature_transfer", "applies to the mesh3d swapper only (--face-swapper-model mesh3d)")


def _check_pixel_boost(options: SwapOptions, catalogue: dict) -> None:
    boost = options.face_swapper_pixel_boost
    if boost not in PIXEL_BOOSTS:
        raise _choose("face_swapper_pixel_boost", boost, [str(b) for b in PIXEL_BOOSTS])
    entry = catalogue.get(options.face_swapper_model)
    if entry is None:  # the built-in mesh swapper warps at the face's own resolution
        if boost != SwapOptions.model_fields["face_swapper_pixel_boost"].default:
            raise OptionError("face_swapper_pixel_boost", "applies to ONNX swappers only, not the built-in mesh swapper")
        return
    size = entry.contract.size
    if boost > size and (boost % size or boost // size not in _BOOST_FACTORS):
        raise OptionError("face_swapper_pixel_boost", f"does not suit {entry.name} ({size} px): use "
                          f"{', '.join(str(size * k) for k in _BOOST_FACTORS)}")
