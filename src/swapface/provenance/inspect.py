"""Read back the synthetic-media marks a file carries (XMP, container tag, C2PA manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swapface.errors import InputError
from swapface.provenance.xmp import DIGITAL_SOURCE_TYPE, digital_source_type, image_format, read_image_xmp

_VIDEO = {".mp4", ".m4v", ".mov", ".mkv", ".webm"}


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Report the marks found in a media file; ``synthetic`` is True when any mark says so."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file to inspect")
    report: dict[str, Any] = {"kind": None, "xmp_digital_source_type": None, "container_tag": None, "c2pa": None}
    if path.suffix.lower() in _VIDEO:
        from swapface.provenance.video import read_video_marks

        report["kind"] = "video"
        try:
            marks = read_video_marks(path)
        except Exception:  # an unreadable container is reported, not raised
            raise InputError("the file is not a readable video") from None
        report["container_tag"] = marks["container_tag"]
        report["xmp_digital_source_type"] = marks["xmp"]
    else:
        data = path.read_bytes()
        if image_format(data) is None:
            raise InputError("not a JPEG, PNG, WebP or video file")
        report["kind"] = "image"
        xmp = read_image_xmp(data)
        report["xmp_digital_source_type"] = digital_source_type(xmp) if xmp else None
    from swapface.provenance import c2pa_manifest

    report["c2pa"] = c2pa_manifest.read(path)
    c2pa_types = (report["c2pa"] or {}).get("digital_source_types", [])
    report["synthetic"] = DIGITAL_SOURCE_TYPE in (
        report["xmp_digital_source_type"], report["container_tag"], *c2pa_types
    )
    return report
