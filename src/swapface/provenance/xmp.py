"""XMP with IPTC DigitalSourceType, inserted into JPEG, PNG and WebP files as bytes (pixels never re-encoded)."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from swapface.errors import InputError

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
NOTICE = "AI-generated: faces in this media were swapped by swapface (synthetic, manipulated content)"
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_XMP = b"XML:com.adobe.xmp"
_DST_RE = re.compile(rb"Iptc4xmpExt:DigitalSourceType(?:=\"|>)\s*([^\"<\s]+)")


def xmp_packet(digital_source_type: str = DIGITAL_SOURCE_TYPE) -> bytes:
    """An XMP packet saying the media is a composite made with a trained algorithm (IPTC vocabulary)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{digital_source_type}"\n'
        '    xmp:CreatorTool="swapface">\n'
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{NOTICE}</rdf:li></rdf:Alt></dc:description>\n'
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def digital_source_type(xmp: bytes) -> str | None:
    """The IPTC DigitalSourceType found in XMP bytes, if any."""
    m = _DST_RE.search(xmp)
    return m.group(1).decode("utf-8", "replace") if m else None


def image_format(data: bytes) -> str | None:
    """'jpeg', 'png' or 'webp' from the file's magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


# --- JPEG -------------------------------------------------------------------------------------------

def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The APPn/COM segments after SOI as (marker, payload), and the offset where the rest begins."""
    pos, out = 2, []
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out, pos


def _jpeg_insert(data: bytes, xmp: bytes) -> bytes:
    segments, rest = _jpeg_segments(data)
    kept = [(m, p) for m, p in segments if not (m == 0xE1 and p.startswith(_JPEG_XMP))]
    lead = 0  # keep JFIF (APP0) and Exif (APP1) first, as their specs ask
    while lead < len(kept) and (kept[lead][0] == 0xE0 or (kept[lead][0] == 0xE1 and kept[lead][1].startswith(b"Exif"))):
        lead += 1
    payload = _JPEG_XMP + xmp
    if len(payload) + 2 > 0xFFFF:
        raise InputError("XMP packet too large for a JPEG segment")
    kept.insert(lead, (0xE1, payload))
    body = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in kept)
    return data[:2] + body + data[rest:]


def _jpeg_read(data: bytes) -> bytes | None:
    segments, _ = _jpeg_segments(data)
    for m, p in segments:
        if m == 0xE1 and p.startswith(_JPEG_XMP):
            return p[len(_JPEG_XMP):]
    return None


# --- PNG --------------------------------------------------------------------------------------------

def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return out


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_insert(data: bytes, xmp: bytes) -> bytes:
    out = [data[:8]]
    itxt = _PNG_XMP + b"\x00\x00\x00" + b"\x00" + b"\x00" + xmp  # no compression, no language, no translation
    for kind, payload in _png_chunks(data):
        if kind == b"iTXt" and payload.startswith(_PNG_XMP + b"\x00"):
            continue
        out.append(_png_chunk(kind, payload))
        if kind == b"IHDR":
            out.append(_png_chunk(b"iTXt", itxt))
    return b"".join(out)


def _png_read(data: bytes) -> bytes | None:
    for kind, payload in _png_chunks(data):
        if kind == b"iTXt" and payload.startswith(_PNG_XMP + b"\x00"):
            rest = payload[len(_PNG_XMP) + 1 :]
            if rest[:1] == b"\x01":  # compressed
                parts = rest[2:].split(b"\x00", 2)
                return zlib.decompress(parts[2])
            return rest[2:].split(b"\x00", 2)[2]
    return None


# --- WebP -------------------------------------------------------------------------------------------

def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 12, []
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return out


def _webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_canvas(chunks: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple (VP8 / VP8L) WebP, read from its bitstream header."""
    kind, payload = chunks[0]
    if kind == b"VP8L":
        bits = int.from_bytes(payload[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    if kind == b"VP8 " and payload[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", payload[6:10])
        return w & 0x3FFF, h & 0x3FFF, False
    raise InputError("unrecognised WebP bitstream; cannot add metadata")


def _webp_insert(data: bytes, xmp: bytes) -> bytes:
    chunks = [(k, p) for k, p in _webp_chunks(data) if k != b"XMP "]
    if chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0] | 0x04
        chunks[0] = (b"VP8X", bytes([flags]) + chunks[0][1][1:])
    else:
        w, h, alpha = _webp_canvas(chunks)
        flags = 0x04 | (0x10 if alpha else 0)
        vp8x = bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", vp8x))
    chunks.append((b"XMP ", xmp))
    body = b"WEBP" + b"".join(_webp_chunk(k, p) for k, p in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_read(data: bytes) -> bytes | None:
    for kind, payload in _webp_chunks(data):
        if kind == b"XMP ":
            return payload
    return None


_INSERT = {"jpeg": _jpeg_insert, "png": _png_insert, "webp": _webp_insert}
_READ = {"jpeg": _jpeg_read, "png": _png_read, "webp": _webp_read}


def mark_image(path: Path) -> None:
    """Insert (or replace) the synthetic-media XMP packet in a JPEG, PNG or WebP file, in place."""
    data = path.read_bytes()
    fmt = image_format(data)
    if fmt is None:
        raise InputError("cannot mark this image format; outputs must be JPEG, PNG or WebP")
    tmp = path.with_name(f".{path.name}.xmp-part")
    tmp.write_bytes(_INSERT[fmt](data, xmp_packet()))
    tmp.replace(path)


def read_image_xmp(data: bytes) -> bytes | None:
    """The XMP packet of a JPEG, PNG or WebP file's bytes, or None."""
    fmt = image_format(data)
    return _READ[fmt](data) if fmt else None
