"""``IntruderService``: consecutive unknown faces per camera, and what is kept at the streak.

A camera's streak counts frames answered ``unknown_face``; a known face resets it, frames with
no face leave it as it is. At ``ATTENDANCE_INTRUDER_THRESHOLD`` an intruder event is recorded in
the database (day, time, camera) and the streak starts again. ``ATTENDANCE_INTRUDER_PHOTOS``
says what photo the event keeps, under ``intruders/YYYY-MM-DD/`` (folders 0700, files 0600,
sealed at rest like every stored photo: ``privacy.sealing``):

* ``full``: the frame as it came (its own format);
* ``blurred``: a JPEG of the frame reduced to a few blurred blocks, so that it shows that
  someone was there but no face can be recognised, with the time and camera drawn on it;
* ``off``: no photo, only the event (its ``path`` is "").
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..config import Settings
from ..db.store import Store
from ..engine import imaging
from ..models import Clock, Sealer
from .files import write_private

log = logging.getLogger(__name__)

BLUR_CELLS = 12  # the longer side is reduced to this many blocks: a face is a blob or two
BLUR_MAX_SIDE = 480  # pixels of the blurred photo's longer side (at most)
JPEG_QUALITY = 80


def blurred_jpeg(frame: bytes, when: datetime, camera: str, max_pixels: int) -> bytes:
    """``frame`` as a JPEG in which nobody can be recognised (reduced to ``BLUR_CELLS``
    blocks on its longer side, then smoothed), with ``when`` and ``camera`` drawn on it."""
    image = Image.fromarray(imaging.decode(frame, max_pixels))
    width, height = image.size
    longer = max(width, height)
    scale = min(1.0, BLUR_MAX_SIDE / longer)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    cells = (
        max(1, round(width * BLUR_CELLS / longer)),
        max(1, round(height * BLUR_CELLS / longer)),
    )
    blocks = image.resize(cells, Image.Resampling.BOX)
    radius = max(size) / BLUR_CELLS / 2
    out = blocks.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(radius))
    label = f"{when:%Y-%m-%d %H:%M:%S}  camera {camera}"
    text_px = max(10, size[1] // 24)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=text_px)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(out)
    left, top, _right, bottom = draw.textbbox((0, 0), label, font=font)
    pad = max(2, text_px // 3)
    strip = bottom - top + 2 * pad
    draw.rectangle((0, size[1] - strip, size[0], size[1]), fill=(0, 0, 0))
    draw.text((pad - left, size[1] - strip + pad - top), label, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class IntruderService:
    def __init__(self, settings: Settings, store: Store, clock: Clock, sealer: Sealer) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sealer = sealer
        self._streaks: dict[str, int] = {}
        self._lock = threading.Lock()

    def known(self, camera: str) -> None:
        """A student was recognised at ``camera``: its streak starts again."""
        with self._lock:
            self._streaks[camera] = 0

    def unknown(self, camera: str, data: bytes) -> Path | None:
        """An unknown face at ``camera`` (``data``: the frame); the saved photo's path when this
        frame completes a streak and a photo is kept (``ATTENDANCE_INTRUDER_PHOTOS``)."""
        with self._lock:
            count = self._streaks.get(camera, 0) + 1
            capture = count >= self.settings.intruder_threshold
            self._streaks[camera] = 0 if capture else count
        return self._save(camera, data) if capture else None

    def _save(self, camera: str, data: bytes) -> Path | None:
        local_now = self.clock().astimezone(self.settings.zone)
        seen_at = local_now.replace(tzinfo=None)
        mode = self.settings.intruder_photos
        if mode == "off":
            self.store.record_intruder(local_now.date(), seen_at, camera, "")
            log.warning("intruder seen at camera %s (no photo kept)", camera)
            return None
        max_pixels = self.settings.max_image_pixels
        if mode == "blurred":
            suffix, photo = ".jpg", blurred_jpeg(data, seen_at, camera, max_pixels)
        else:
            suffix, photo = imaging.probe(data, max_pixels).suffix, data
        root = self.settings.intruders_dir
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = root / local_now.date().isoformat()
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"intruder_{local_now:%H%M%S}_{camera}_{uuid.uuid4().hex[:8]}{suffix}"
        write_private(path, self.sealer.seal(photo))
        try:
            self.store.record_intruder(local_now.date(), seen_at, camera, str(path))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.warning("intruder photo saved from camera %s: %s", camera, path.name)
        return path
