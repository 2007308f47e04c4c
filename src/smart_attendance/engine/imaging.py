"""Safe image decoding for uploads and dataset photos.

Accepts JPEG, PNG, WebP and BMP; anything else (SVG, PDF, GIF, TIFF, text...) is refused with
``UnsupportedImageError``. The pixel count is checked from the header *before* decoding, so a
decompression bomb is refused without allocating it. Every mode (greyscale, 16-bit, palette,
alpha, CMYK) comes out as 8-bit RGB, turned upright from the EXIF orientation. Only the
accepted formats' decoders are ever tried (``Image.open(..., formats=...)``).

``decode(..., max_side=N)`` shrinks a large image as it is decoded: a JPEG is decoded at 1/2,
1/4 or 1/8 scale by the codec itself (draft mode, never below ``N``), other formats are
reduced right after decoding, so at most one full-size copy exists at a time.
``request_pixels`` adds up the pixels of a request's frames from their headers alone: the
request's budget is checked before any frame is decoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, ImageTooLargeError, UnsupportedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})
# The Pillow plugins tried on an upload, in this order (JPEG's opens a multi-picture JPEG as MPO).
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # decoded at a reduced scale by the codec itself
NEAREST_ONLY_MODES = frozenset({"P", "PA", "1"})  # Pillow resizes these by nearest neighbour
_T = Image.Transpose
TRANSPOSE_BY_ORIENTATION = {  # EXIF orientation -> what turns the picture upright
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}
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
            image = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
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


def request_pixels(frames: Iterable[bytes], max_pixels: int, budget: int) -> int:
    """The pixels of a request's frames in all, from their headers alone (nothing decoded);
    ``ImageTooLargeError`` as soon as one frame is over ``max_pixels`` or the sum over
    ``budget``. A frame whose header cannot be read counts for nothing here: decoding it
    refuses it with its own error, and it would decode no pixel."""
    total = 0
    for data in frames:
        try:
            info = probe(data, max_pixels)
        except ImageTooLargeError:
            raise
        except ImageError:
            continue
        total += info.width * info.height
        if total > budget:
            raise ImageTooLargeError(
                f"the frames of this request have more than {budget} pixels in all "
                "(ATTENDANCE_MAX_REQUEST_PIXELS); send fewer or smaller frames"
            )
    return total


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


def decode(data: bytes, max_pixels: int, max_side: int | None = None) -> np.ndarray:
    """Decode to an upright ``(height, width, 3)`` uint8 RGB array, or raise ``ImageError``;
    with ``max_side``, a larger image comes out shrunk to fit ``max_side`` x ``max_side``."""
    return decode_sized(data, max_pixels, max_side)[0]


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """The size that fits ``width`` x ``height`` into ``max_side`` (None: it fits already)."""
    longer = max(width, height)
    if not max_side or longer <= max_side:
        return None
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_sized(
    data: bytes, max_pixels: int, max_side: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """``decode``, and the image's own upright ``(width, height)`` (what the array's
    coordinates scale back to when it was shrunk)."""
    image, info = _open(data, max_pixels)
    target = _fit(info.width, info.height, max_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if target and info.format in DRAFT_FORMATS:
                # The codec decodes at 1/2, 1/4 or 1/8 scale, never below the target.
                image.draft(image.mode, target)
            image.load()
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            if target and image.mode in NEAREST_ONLY_MODES:
                image = _to_rgb(image)  # palette and 1-bit images resize well only as RGB
            if target and image.size != target:
                factor = max(image.size) // max(target)
                if factor >= 2:  # a box average by a whole factor first: fast, no big copy
                    image = image.reduce(factor)
                image = image.resize(target, Image.Resampling.BILINEAR)
            rgb = _to_rgb(image)
            transpose = TRANSPOSE_BY_ORIENTATION.get(orientation)
            if transpose is not None:
                rgb = rgb.transpose(transpose)
            array = np.asarray(rgb, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ImageTooLargeError("the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image cannot be decoded ({_short(exc)})") from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError("the image could not be converted to RGB")
    turned = orientation in {5, 6, 7, 8}  # a quarter turn: width and height swap
    upright = (info.height, info.width) if turned else (info.width, info.height)
    return np.ascontiguousarray(array), upright
