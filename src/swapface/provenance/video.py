"""Synthetic-media marks for videos: container tags written by a stream-copy remux (no re-encode).

MP4/MOV also get the standard XMP ``uuid`` box (the same IPTC packet images carry), appended as a
top-level box so no sample offset moves.
"""

from __future__ import annotations

import struct
from pathlib import Path

import av

from swapface.errors import InputError
from swapface.provenance.xmp import DIGITAL_SOURCE_TYPE, NOTICE, xmp_packet

TAG_DIGITAL_SOURCE_TYPE = "digital_source_type"
TAG_COMMENT = "comment"
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
_MUXERS = {".mp4": ("mp4", True), ".m4v": ("mp4", True), ".mov": ("mov", True), ".mkv": ("matroska", False),
           ".webm": ("webm", False)}


def mark_video(path: Path) -> None:
    """Remux ``path`` in place with the digital-source-type tags, copying every stream as it is."""
    suffix = path.suffix.lower()
    if suffix not in _MUXERS:
        raise InputError(f"cannot mark {suffix or 'this'} videos; outputs must be MP4, MOV, MKV or WebM")
    fmt, is_mov = _MUXERS[suffix]
    tmp = path.with_name(f".{path.name}.mark-part{suffix}")
    options = {"movflags": "use_metadata_tags+faststart"} if is_mov else {}
    try:
        with av.open(str(path)) as src, av.open(str(tmp), "w", format=fmt, options=options) as dst:
            dst.metadata.update({k: v for k, v in src.metadata.items() if k.lower() != "encoder"})
            dst.metadata[TAG_DIGITAL_SOURCE_TYPE] = DIGITAL_SOURCE_TYPE
            dst.metadata[TAG_COMMENT] = NOTICE
            streams = {}
            for stream in src.streams:
                out = dst.add_stream_from_template(stream)
                out.metadata.update(stream.metadata)
                streams[stream.index] = out
            for packet in src.demux():
                if packet.dts is None:  # demuxer flush packets
                    continue
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
        if is_mov:
            packet_xmp = xmp_packet()
            with open(tmp, "ab") as f:
                f.write(struct.pack(">I", 8 + 16 + len(packet_xmp)) + b"uuid" + XMP_UUID + packet_xmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_video_marks(path: Path) -> dict[str, str | None]:
    """The container's digital-source-type tag and the XMP packet's value (MP4/MOV), where present."""
    with av.open(str(path)) as src:
        tags = {k.lower(): v for k, v in src.metadata.items()}
    xmp = _mp4_xmp(path) if path.suffix.lower() in (".mp4", ".m4v", ".mov") else None
    from swapface.provenance.xmp import digital_source_type

    return {"container_tag": tags.get(TAG_DIGITAL_SOURCE_TYPE), "xmp": digital_source_type(xmp) if xmp else None}


def _mp4_xmp(path: Path) -> bytes | None:
    """The XMP packet of an MP4's top-level uuid box, walking box headers only."""
    with open(path, "rb") as f:
        size_total = f.seek(0, 2)
        pos = 0
        while pos + 8 <= size_total:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            header = 8
            if size == 1:
                (size,) = struct.unpack(">Q", f.read(8))
                header = 16
            elif size == 0:
                size = size_total - pos
            if size < header:
                return None
            if kind == b"uuid" and f.read(16) == XMP_UUID:
                return f.read(size - header - 16)
            pos += size
    return None
