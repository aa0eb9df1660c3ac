"""Marks that say an output is synthetic (AI-manipulated), and reading them back.

Every finished output passes through :func:`finalize_output` before it is published:

- images (JPEG, PNG, WebP) get an XMP packet with IPTC ``Iptc4xmpExt:DigitalSourceType`` =
  ``compositeWithTrainedAlgorithmicMedia``, inserted as bytes (pixels are not re-encoded);
- videos get the same value as a container tag (``digital_source_type``, plus a ``comment``), by a
  stream-copy remux that keeps every stream; MP4/MOV also carry the XMP packet in a ``uuid`` box;
- when a signing certificate and key are configured (``SWAPFACE_C2PA_CERT``, ``SWAPFACE_C2PA_KEY``),
  a C2PA manifest (EDIT intent, ``c2pa.edited`` with that digital source type) on JPEG, PNG and MP4.

The marks meet the machine-readable marking duty for deepfakes (EU AI Act, Article 50).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swapface.errors import InputError
from swapface.provenance.xmp import DIGITAL_SOURCE_TYPE, image_format, mark_image

__all__ = ["DIGITAL_SOURCE_TYPE", "finalize_output"]

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm"}


def finalize_output(path: str | Path, options: Any, settings: Any | None = None) -> None:
    """Mark a finished local output file as synthetic in place (metadata, and C2PA when configured)."""
    if options is not None and not getattr(options, "mark_output", True):
        return
    path = Path(path)
    if not path.is_file():
        raise InputError("the output to mark does not exist")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        from swapface.provenance.video import mark_video

        mark_video(path)
    else:
        with open(path, "rb") as f:
            head = f.read(16)
        if image_format(head) is None:
            raise InputError("cannot mark this output format; use JPEG, PNG, WebP, MP4, MOV, MKV or WebM")
        mark_image(path)
    if settings is None:
        from swapface.config import load_settings

        settings = load_settings()
    cert, key = getattr(settings, "c2pa_cert", None), getattr(settings, "c2pa_key", None)
    if cert and key:
        from swapface.provenance import c2pa_manifest

        c2pa_manifest.sign(path, Path(cert), Path(key), settings.c2pa_alg, settings.c2pa_tsa_url)
