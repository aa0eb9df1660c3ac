"""Turning a job request (multipart upload or references to stored objects) into a stored, queued job.

Everything is checked before anything is stored: field names, option values, file names, that each
source is an image and the target an image or a video. Inputs are stored under the job's own folder
with names the service chooses (``<job>/inputs/source-0.jpg``), never the caller's file names.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapface import storage
from swapface.config import Settings
from swapface.errors import InputError
from swapface.media.video_limits import VideoLimits, check_video_size
from swapface.options import SwapOptions, parse_options
from swapface.validation import check_options

FILE_FIELDS = ("source", "target", "reference_face")
URI_FIELDS = ("source_uri", "target_uri", "reference_face_uri")
OTHER_FIELDS = ("options", "webhook_url", "webhook_secret")
MAX_SOURCES = 8
MAX_REFERENCE_CHARS = 1024
MAX_NAME_CHARS = 255
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
VIDEO_FORMATS = (("mp4", "mp4"), ("mov", "mov"), ("matroska", "mkv"), ("webm", "webm"), ("avi", "avi"),
                 ("mpegts", "ts"), ("flv", "flv"), ("ogg", "ogv"))


@dataclass
class Upload:
    """A file part of the request, saved to a private temporary file."""

    field: str
    path: Path
    size: int


@dataclass
class JobRequest:
    """A parsed, not yet validated job request."""

    uploads: list[Upload] = field(default_factory=list)
    uris: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True)
class CheckedInput:
    """An input that passed its checks: where it is now and the extension it is stored under."""

    role: str  # source | target | reference_face
    local: Path | None  # an upload
    uri: str | None  # a reference to a stored object
    ext: str
    kind: str  # image | video
    digest: str


def check_file_name(name: str | None) -> None:
    """Refuse file names that try to reach outside a folder (they are never used, but such a request is hostile)."""
    if not name:
        return
    if _BAD_NAME.search(name) or name in (".", "..") or ".." in name.split("/"):
        raise InputError("file names must not contain path separators, '..' or control characters", code="bad_file_name")


def _tuple_field(name: str) -> bool:
    annotation = SwapOptions.model_fields[name].annotation
    return typing.get_origin(annotation) is tuple


def option_values(fields: dict[str, list[str]], options_json: str | None) -> dict[str, Any]:
    """Options from an ``options`` JSON object and from form fields named like the options (comma lists allowed)."""
    values: dict[str, Any] = {}
    if options_json:
        from swapface.service.limits import load_json

        parsed = load_json(options_json, "the 'options' field", code="bad_option")
        if not isinstance(parsed, dict):
            raise InputError("the 'options' field must be a JSON object", code="bad_option")
        values.update(parsed)
    for name, items in fields.items():
        if _tuple_field(name):
            values[name] = [part.strip() for item in items for part in item.split(",") if part.strip()]
        elif len(items) > 1:
            raise InputError(f"option {name!r} was given {len(items)} times", code="bad_option")
        else:
            values[name] = items[0]
    return values


def validate_options(values: dict[str, Any]) -> SwapOptions:
    """The job's options, checked against this installation (names, ranges, combinations); outputs of the
    service are always marked as synthetic."""
    options = parse_options(values)
    if not options.mark_output:
        raise InputError("the service always marks its outputs as AI-generated; mark_output cannot be false",
                         code="bad_option")
    check_options(options)
    return options


def check_combination(options: SwapOptions, inputs: list[CheckedInput]) -> None:
    """The checks that need the inputs: reference mode and its photo, the encoder for a video target."""
    check_options(options, has_reference=any(i.role == "reference_face" for i in inputs),
                  video=any(i.role == "target" and i.kind == "video" for i in inputs))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _image_ext(path: Path, max_pixels: int, role: str) -> str | None:
    """The stored extension of an image file, None when it is not an image; InputError when unusable.

    The image is decoded once, with the limits the engine's ``read_image`` applies (``max_pixels`` and
    Pillow's decompression-bomb limit), but its pixels are not transposed and copied out into an array:
    that made up about half the time of a POST with a 1 MB JPEG, for pixels nobody used.
    """
    from PIL import Image, UnidentifiedImageError

    def unusable(reason: str) -> InputError:
        return InputError(f"the {role.replace('_', ' ')} image cannot be used: {reason}", code="bad_media")

    try:
        img = Image.open(path)
    except Image.DecompressionBombError:  # raised by open itself for the most extreme sizes
        return _too_many_pixels(unusable, None, max_pixels)
    except (UnidentifiedImageError, OSError):
        return None
    with img:
        fmt = img.format
        pixels = img.width * img.height
        if pixels > max_pixels or (Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS):
            return _too_many_pixels(unusable, img.size, max_pixels)
        try:
            img.getexif()  # read_image applies the EXIF orientation
            img.load()
            if img.mode != "RGB":
                img.convert("RGB")
        except Image.DecompressionBombError:
            return _too_many_pixels(unusable, img.size, max_pixels)
        except OSError as exc:
            raise unusable(exc.strerror or "damaged or truncated image") from None
    if _trailing_data(path, fmt or ""):
        raise unusable("it carries data after the end of the image (a polyglot file); save it again as a plain image")
    return IMAGE_FORMATS.get(fmt or "", "png")


_IMAGE_ENDS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def _trailing_data(path: Path, fmt: str) -> bool:
    """Whether bytes follow the image's own end (a ZIP, HTML or script appended to make a polyglot).

    JPEG must end with its EOI marker and PNG with its IEND chunk (a few padding bytes of zeros allowed);
    WebP's RIFF header states its length."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if fmt == "WEBP":
            header = f.read(8)
            return len(header) == 8 and int.from_bytes(header[4:8], "little") + 8 + 1 < size
        end = _IMAGE_ENDS.get(fmt)
        if end is None:
            return False
        f.seek(max(0, size - 4096))
        tail = f.read().rstrip(b"\x00")
    return not tail.endswith(end)


def _too_many_pixels(unusable: typing.Callable[[str], InputError], size: tuple[int, int] | None,
                     max_pixels: int) -> typing.NoReturn:
    found = f"{size[0]}x{size[1]} pixels" if size else "too many pixels"
    raise unusable(f"{found}, over the limit of {max_pixels:,} (SWAPFACE_MAX_IMAGE_PIXELS)")


def check_output_size(options: SwapOptions, limits: VideoLimits) -> None:
    """``output_video_resolution`` is held to the same pixel limit as the target's own frames."""
    from swapface.options import output_size
    from swapface.validation import OptionError

    size = output_size(options)
    if size is not None and size[0] * size[1] > limits.pixels:
        raise OptionError("output_video_resolution", f"{size[0]}x{size[1]} pixels is over the limit of "
                          f"{limits.pixels:,} per frame (SWAPFACE_MAX_VIDEO_PIXELS)")


def _video_ext(path: Path, limits: VideoLimits | None = None) -> str | None:
    """The stored extension of a video file, None when it is not a usable video."""
    import av

    from swapface.media.video import probe

    try:
        info = probe(path)
    except (InputError, av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None
    if limits is not None:
        check_video_size(info, limits)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            names = container.format.name.split(",")
    except (InputError, av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None
    for name, ext in VIDEO_FORMATS:
        if name in names:
            return ext
    return "mp4"


def check_media(role: str, path: Path, max_pixels: int, video_limits: VideoLimits | None = None) -> tuple[str, str]:
    """(extension, kind) of an input; sources and reference faces must be images, the target either."""
    ext = _image_ext(path, max_pixels, role)
    if ext is not None:
        return ext, "image"
    if role != "target":
        raise InputError(f"the {role.replace('_', ' ')} is not a readable image (JPEG, PNG, WebP, BMP or TIFF)", code="bad_media")
    ext = _video_ext(path, video_limits)
    if ext is None:
        raise InputError("the target is neither a readable image nor a readable video", code="bad_media")
    return ext, "video"


def check_reference(uri: str, settings: Settings, owner_of: typing.Callable[[str], str | None], owner: str) -> str:
    """A reference to an object already in the configured storage; never another caller's job media or keys."""
    if len(uri) > MAX_REFERENCE_CHARS or any(len(part) > MAX_NAME_CHARS for part in uri.split("/")) or "\x00" in uri:
        raise InputError("object references are at most 1024 characters, 255 per name", code="bad_reference")
    root = storage.canonical(settings.resolved_storage_url())
    canonical = storage.canonical(uri)
    if ".." in uri.split("/") or not canonical.startswith(root + "/"):
        raise InputError("object references must point inside the service's storage", code="bad_reference")
    first = canonical[len(root) + 1:].split("/", 1)[0]
    if first == storage.keys.KEYS_DIR:
        raise InputError("object references must point inside the service's storage", code="bad_reference")
    job_owner = owner_of(first)
    if job_owner is not None and job_owner != owner:
        raise InputError("no such object", code="bad_reference")
    size = storage.object_size(canonical)
    if size is None:  # missing, or a folder
        raise InputError("no such object", code="bad_reference")
    if size > settings.max_upload_mb * 1024 * 1024:
        raise InputError(f"the object is larger than {settings.max_upload_mb:g} MB", code="upload_too_large")
    return canonical


def _check_counts(request: JobRequest) -> None:
    """How many inputs of each role the request names, checked before any of them is read."""
    counts = {"source": 0, "target": 0, "reference_face": 0}
    for upload in request.uploads:
        counts[upload.field] += 1
    for field_name, uris in request.uris.items():
        counts[field_name[: -len("_uri")]] += len(uris)
    if not counts["source"]:
        raise InputError("a job needs at least one source image ('source' file or 'source_uri')", code="missing_source")
    if counts["source"] > MAX_SOURCES:
        raise InputError(f"at most {MAX_SOURCES} source images per job", code="too_many_sources")
    if counts["target"] != 1:
        raise InputError("a job needs exactly one target ('target' file or 'target_uri')", code="missing_target")
    if counts["reference_face"] > 1:
        raise InputError("at most one reference face per job", code="bad_reference")


def checked_inputs(request: JobRequest, settings: Settings, owner: str,
                   owner_of: typing.Callable[[str], str | None], scratch: Path,
                   video_limits: VideoLimits | None = None) -> list[CheckedInput]:
    """Every input of the request, checked; InputError for the first problem."""
    _check_counts(request)  # before anything is copied or decoded
    video_limits = video_limits or VideoLimits.for_key(settings, None)
    by_role: dict[str, list[CheckedInput]] = {"source": [], "target": [], "reference_face": []}
    for upload in request.uploads:
        ext, kind = check_media(upload.field, upload.path, settings.max_image_pixels, video_limits)
        by_role[upload.field].append(CheckedInput(upload.field, upload.path, None, ext, kind, _digest(upload.path)))
    for field_name, uris in request.uris.items():
        role = field_name[: -len("_uri")]
        for uri in uris:
            canonical = check_reference(uri, settings, owner_of, owner)
            with storage.fetch(canonical, settings=settings) as local:
                copy = scratch / f"ref-{len(list(scratch.iterdir()))}"
                shutil.copyfile(local, copy)
            ext, kind = check_media(role, copy, settings.max_image_pixels, video_limits)
            by_role[role].append(CheckedInput(role, copy, canonical, ext, kind, _digest(copy)))
    return by_role["source"] + by_role["target"] + by_role["reference_face"]


def request_hash(inputs: list[CheckedInput], options: SwapOptions, webhook_url: str | None) -> str:
    """What makes two requests the same (for Idempotency-Key): inputs' bytes, options and the webhook."""
    doc = {"inputs": [[i.role, i.digest] for i in inputs], "options": options.model_dump(mode="json"),
           "webhook_url": webhook_url}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def store_inputs(job_id: str, inputs: list[CheckedInput], options: SwapOptions, settings: Settings) -> dict[str, Any]:
    """Store the inputs under the job's folder; returns the job's engine spec (all locations in storage)."""
    base = f"{settings.resolved_storage_url().rstrip('/')}/{job_id}"
    sources, target, reference, kind, target_ext = [], "", None, "image", "png"
    for index, item in enumerate(inputs):
        name = {"source": f"source-{index}", "target": "target", "reference_face": "reference"}[item.role]
        uri = f"{base}/inputs/{name}.{item.ext}"
        storage.publish(item.local, uri, job_id=job_id, settings=settings)  # type: ignore[arg-type]
        if item.role == "source":
            sources.append(uri)
        elif item.role == "target":
            target, kind, target_ext = uri, item.kind, item.ext
        else:
            reference = uri
    return {"sources": sources, "target": target, "reference_face": reference, "kind": kind,
            **job_locations(job_id, kind, target_ext, settings),
            "options": options.model_dump(mode="json", exclude_defaults=True)}


def job_locations(job_id: str, kind: str, target_ext: str, settings: Settings) -> dict[str, str]:
    """Where a job's result and work folder go in storage: MP4 for videos, the target's format for JPEG, PNG
    and WebP images, PNG for other images."""
    base = f"{settings.resolved_storage_url().rstrip('/')}/{job_id}"
    out_ext = "mp4" if kind == "video" else (target_ext if target_ext in ("jpg", "png", "webp") else "png")
    return {"output": f"{base}/outputs/result.{out_ext}", "work_dir": f"{base}/work"}


def allowed_fields() -> set[str]:
    """Every form field name POST /v1/jobs understands."""
    return set(FILE_FIELDS) | set(URI_FIELDS) | set(OTHER_FIELDS) | set(SwapOptions.model_fields)
