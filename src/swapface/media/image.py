"""Image files in and out: RGB uint8 arrays inside, a pixel limit against decompression bombs."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from swapface.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}  # what is read as a photo
# what a swapped photo may be written as: the formats the synthetic-media mark can be embedded in
OUTPUT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_MAX_PIXELS = 40_000_000


def is_image_path(path: str | Path) -> bool:
    """Whether the name looks like an image file (by suffix)."""
    return Path(str(path)).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (EXIF orientation applied); InputError when it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"cannot read {p.name!r}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                if img.width * img.height > max_pixels:
                    raise InputError(
                        f"{p.name!r} has {img.width}x{img.height} pixels, over the limit of {max_pixels:,} "
                        "(SWAPFACE_MAX_IMAGE_PIXELS)"
                    )
                upright = ImageOps.exif_transpose(img)
                return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"cannot read {p.name!r}: not a supported image ({type(exc).__name__})") from None
    except OSError as exc:
        raise InputError(f"cannot read {p.name!r}: {exc.strerror or 'damaged or truncated image'}") from None


def image_from_array(frame: np.ndarray) -> Image.Image:
    """A PIL image of an RGB uint8 frame."""
    return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), "RGB")


def write_image(frame: np.ndarray, path: str | Path, *, quality: int = 90) -> Path:
    """Write an RGB frame; the format follows the suffix. Written aside then moved, so no half file is left."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"cannot write {p.name!r}: unknown image type; use .jpg, .png or .webp")
    if not p.parent.exists():
        raise InputError(f"cannot write {p.name!r}: its folder does not exist")
    tmp = p.with_name(f".{p.stem}.part{os.getpid()}{suffix}")
    kwargs: dict[str, Any] = {}
    if suffix in {".jpg", ".jpeg", ".webp"}:
        kwargs["quality"] = int(quality)
    try:
        image_from_array(frame).save(tmp, **kwargs)
        os.replace(tmp, p)
    except PermissionError:
        raise InputError(f"cannot write {p.name!r}: permission denied") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {p.name!r}: {exc.strerror or exc}") from None
    return p
