"""Safe image decoding for uploads and dataset photos.

Accepts JPEG, PNG, WebP and BMP; anything else (SVG, PDF, GIF, TIFF, text...) is refused with
``UnsupportedImageError``. The pixel count is checked from the header *before* decoding, so a
decompression bomb is refused without allocating it. Every mode (greyscale, 16-bit, palette,
alpha, CMYK) comes out as 8-bit RGB, turned upright from the EXIF orientation.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, ImageTooLargeError, UnsupportedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})
ORIENTATION_TAG = 0x0112  # EXIF
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: format and size, before any pixel is decoded."""

    format: str
    width: int
    height: int

    @property
    def suffix(self) -> str:
        return SUFFIX_BY_FORMAT.get(self.format, ".img")


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=None)
    except UnidentifiedImageError:
        raise UnsupportedImageError(
            "not an image we can read (send JPEG, PNG, WebP or BMP)"
        ) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image cannot be decoded ({_short(exc)})") from None
    fmt = (image.format or "").upper()
    if fmt not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(
            f"{fmt or 'this'} images are not accepted (send JPEG, PNG, WebP or BMP)"
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels, more than the limit of {max_pixels}"
        )
    return image, ImageInfo(fmt, width, height)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def probe(data: bytes, max_pixels: int) -> ImageInfo:
    """Check type and size from the header only; raises an ``ImageError`` subclass."""
    image, info = _open(data, max_pixels)
    image.close()
    return info


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        # 16/32-bit greyscale: scale to 8 bits from the actual range instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        grey = np.clip(array * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode to an upright ``(height, width, 3)`` uint8 RGB array, or raise ``ImageError``."""
    image, _info = _open(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            # Pillow's exif_transpose copies the image even when it is already upright.
            if image.getexif().get(ORIENTATION_TAG, 1) != 1:
                image = ImageOps.exif_transpose(image) or image
            rgb = _to_rgb(image)
            array = np.asarray(rgb, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image cannot be decoded ({_short(exc)})") from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError("the image could not be converted to RGB")
    return np.ascontiguousarray(array)
