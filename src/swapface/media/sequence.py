"""Image sequences: a folder of frames read and written as a clip (natural order, 25 frames/s)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from swapface.errors import InputError

if TYPE_CHECKING:
    from swapface.media.video import DecodeReport, VideoInfo

FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
SEQUENCE_RATE = Fraction(25)


def _natural(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files of a folder in natural order (frame2 before frame10); hidden files ignored."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural(p.name))


def read_frame(path: str | Path) -> np.ndarray:
    """One frame file as RGB uint8 (the lead's image reader, which applies limits and EXIF orientation)."""
    from swapface.media.image import read_image

    return read_image(path)


def probe_sequence(folder: Path) -> "VideoInfo":
    """Describe a folder of frames as a clip; every frame must have the first one's size."""
    from swapface.media.video import VideoInfo

    files = frame_files(folder)
    if not files:
        raise InputError(f"the folder {folder.name!r} holds no image frames (.png, .jpg, .webp)")
    try:
        with Image.open(files[0]) as first:
            width, height = first.size
    except OSError:
        raise InputError(f"cannot read the first frame of {folder.name!r}") from None
    return VideoInfo(
        frames=len(files),
        rate=SEQUENCE_RATE,
        time_base=1 / SEQUENCE_RATE,
        pts=tuple(range(len(files))),
        width=width,
        height=height,
        declared_frames=len(files),
        codec="images",
        files=tuple(str(p) for p in files),
    )


def decode_sequence(info: "VideoInfo", start: int, end: int, report: "DecodeReport") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(index, pts, rgb)`` for the frames of a sequence; unreadable or odd-sized frames count as lost."""
    for index in range(start, end):
        try:
            rgb = read_frame(info.files[index])
        except InputError:
            report.lost += 1
            continue
        if rgb.shape[:2] != (info.height, info.width):
            report.lost += 1
            continue
        report.decoded += 1
        yield index, info.pts[index], rgb


def write_sequence_frame(folder: Path, index: int, rgb: np.ndarray) -> Path:
    """Write frame ``index`` as ``folder/NNNNNN.png`` (lossless)."""
    from swapface.media.image import write_image

    return write_image(rgb, folder / f"{index:06d}.png")
