"""``IntruderService``: consecutive unknown faces per camera, and what is kept at the streak.

A camera's streak counts frames answered ``unknown_face``; a known face resets it, frames with
no face leave it as it is. At ``ATTENDANCE_INTRUDER_THRESHOLD`` an intruder event is recorded in
the database (day, time, camera) and the streak starts again. The streak is kept in the
database (``intruder_streaks``, updated atomically), so a camera whose frames land on several
servers completes it once, after the same number of frames as on one server.
``ATTENDANCE_INTRUDER_PHOTOS`` says what photo the event keeps, under ``intruders/YYYY-MM-DD/``
(folders 0700, files 0600, sealed at rest like every stored photo: ``privacy.sealing``):

* ``full``: the frame as it came (its own format);
* ``blurred``: a JPEG of the frame reduced to a few blurred blocks, so that it shows that
  someone was there but no face can be recognised, with the time and camera drawn on it;
* ``off``: no photo, only the event (its ``path`` is "").

Floods are bounded. The same stranger at the same camera is captured once per
``ATTENDANCE_INTRUDER_COOLDOWN_S``: a capture's descriptors (in this server's memory only, never
stored: biometric data of strangers is not kept, forgotten after the cooldown) are compared
with the camera's recent captures under the match threshold. Another server cannot compare
them, so across servers the guard is coarser: the camera's last capture (when, by which server)
is in the database, and within the cooldown only the server that made it may capture again
(a different stranger, by its descriptors): the photos of one camera within a cooldown all come
from one server, and never show the same stranger twice. The photos use at most
``ATTENDANCE_INTRUDER_MAX_MB`` in all (the folder's size is counted once, kept up to date as
photos are written, and counted again every few minutes); beyond it a capture keeps only its
event. Saving never fails the scan: a full disk or a folder
that cannot be written is logged, and the scan is answered as usual.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..config import Settings
from ..db.store import Store
from ..engine import imaging
from ..errors import AttendanceError
from ..models import Clock, Sealer
from .files import DiskCap, file_safe, write_private

log = logging.getLogger(__name__)

BLUR_CELLS = 12  # the longer side is reduced to this many blocks: a face is a blob or two
BLUR_MAX_SIDE = 480  # pixels of the blurred photo's longer side (at most)
JPEG_QUALITY = 80
RECENT_PER_CAMERA = 64  # strangers remembered per camera during the cooldown (at most)


def blurred_jpeg(frame: bytes, when: datetime, camera: str, max_pixels: int) -> bytes:
    """``frame`` as a JPEG in which nobody can be recognised (reduced to ``BLUR_CELLS``
    blocks on its longer side, then smoothed), with ``when`` and ``camera`` drawn on it."""
    # Decoded at most 4x the output's size: a JPEG by its codec at a reduced scale.
    image = Image.fromarray(imaging.decode(frame, max_pixels, max_side=4 * BLUR_MAX_SIDE))
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
        # who captures, in the database's ``intruder_streaks.captured_by`` (one per process)
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}@{socket.gethostname()}"[:64]
        # camera -> (when, descriptor or None) of this server's captures within the cooldown
        self._recent: dict[str, list[tuple[float, np.ndarray | None]]] = {}
        self.disk = DiskCap(settings.intruders_dir, settings.intruder_max_mb * 1024 * 1024)
        self._lock = threading.Lock()

    def known(self, camera: str) -> None:
        """A student was recognised at ``camera``: its streak starts again (a database that
        cannot be written is logged: the scan is answered all the same)."""
        try:
            self.store.reset_streak(camera, self._utc_now())
        except AttendanceError as exc:
            log.error("intruder streak at camera %s not reset: %s", camera, exc)

    def unknown(
        self, camera: str, data: bytes, strangers: Sequence[np.ndarray] = ()
    ) -> Path | None:
        """An unknown face at ``camera`` (``data``: the frame; ``strangers``: the unknown
        faces' descriptors); the saved photo's path when this frame completes a streak and a
        photo is kept (``ATTENDANCE_INTRUDER_PHOTOS``, the cooldown, the disk cap). Never
        raises for a photo or event that cannot be saved: that is logged."""
        try:
            now = self._utc_now()
            if not self.store.count_unknown(camera, now, self.settings.intruder_threshold):
                return None
            if not self._first_capture(camera, strangers, now):
                return None
        except AttendanceError as exc:
            log.error("intruder streak at camera %s not counted: %s", camera, exc)
            return None
        try:
            return self._save(camera, data)
        except (OSError, AttendanceError) as exc:
            log.error("intruder at camera %s not saved: %s", camera, exc)
            return None

    def _utc_now(self) -> datetime:
        return self.clock().astimezone(timezone.utc).replace(tzinfo=None)

    def _first_capture(self, camera: str, strangers: Sequence[np.ndarray], now: datetime) -> bool:
        """Whether the streak just completed at ``camera`` is captured: not within the
        cooldown of a capture of the same strangers here, nor of any capture by another
        server (``Store.claim_capture``). A capture is remembered here and in the database."""
        cooldown = self.settings.intruder_cooldown_s
        if cooldown <= 0:
            return True
        with self._lock:  # one capture decision at a time in this process
            if self._seen_lately(camera, strangers):
                log.info("intruder at camera %s seen again within the cooldown", camera)
                return False
            if not self.store.claim_capture(camera, now, cooldown, self.owner):
                log.info(
                    "intruder at camera %s not captured: another server captured there "
                    "within the cooldown",
                    camera,
                )
                return False
            self._remember(camera, strangers)
            return True

    def _seen_lately(self, camera: str, strangers: Sequence[np.ndarray]) -> bool:
        """Whether one of ``strangers`` was captured at ``camera`` by this server within the
        cooldown. Without descriptors, any capture of the camera without descriptors counts.
        (Called under the lock.)"""
        cooldown = self.settings.intruder_cooldown_s
        now = self.clock().timestamp()
        recent = [(t, d) for t, d in self._recent.get(camera, ()) if 0 <= now - t < cooldown]
        for cam in [c for c, items in self._recent.items() if c != camera and items]:
            if now - self._recent[cam][-1][0] >= cooldown:  # forget a quiet camera's strangers
                del self._recent[cam]
        vectors = [np.asarray(v, np.float32) for v in strangers]
        if vectors:
            seen = [d for _t, d in recent if d is not None]
            threshold = self.settings.match_threshold
            same = bool(seen) and any(
                float(np.min(np.linalg.norm(np.stack(seen) - v, axis=1))) <= threshold
                for v in vectors
            )
        else:
            same = any(d is None for _t, d in recent)
        self._recent[camera] = recent
        return same

    def _remember(self, camera: str, strangers: Sequence[np.ndarray]) -> None:
        """Remember ``strangers`` as captured at ``camera`` now (called under the lock)."""
        now = self.clock().timestamp()
        vectors = [np.asarray(v, np.float32) for v in strangers]
        recent = self._recent.get(camera, [])
        recent += [(now, v) for v in vectors] if vectors else [(now, None)]
        self._recent[camera] = recent[-RECENT_PER_CAMERA:]

    def _save(self, camera: str, data: bytes) -> Path | None:
        """Record the event, with its photo when one is kept and there is room for it; a
        photo that cannot be written (disk full, folder not writable) leaves the event
        without a photo."""
        local_now = self.clock().astimezone(self.settings.zone)
        seen_at = local_now.replace(tzinfo=None)
        path = self._write_photo(camera, data, local_now)
        try:
            self.store.record_intruder(local_now.date(), seen_at, camera, str(path or ""))
        except BaseException:
            if path is not None:
                path.unlink(missing_ok=True)
            raise
        if path is None:
            log.warning("intruder seen at camera %s (no photo kept)", camera)
        else:
            log.warning("intruder photo saved from camera %s: %s", camera, path.name)
        return path

    def _write_photo(self, camera: str, data: bytes, local_now: datetime) -> Path | None:
        """The photo ``ATTENDANCE_INTRUDER_PHOTOS`` keeps, sealed and written (0600); None
        when none is kept, there is no room under the disk cap, or writing failed."""
        mode = self.settings.intruder_photos
        if mode == "off":
            return None
        max_pixels = self.settings.max_image_pixels
        if mode == "blurred":
            seen_at = local_now.replace(tzinfo=None)
            suffix, photo = ".jpg", blurred_jpeg(data, seen_at, camera, max_pixels)
        else:
            suffix, photo = imaging.probe(data, max_pixels).suffix, data
        sealed = self.sealer.seal(photo)
        if not self.disk.room_for(len(sealed)):
            log.warning(
                "intruder photo from camera %s not kept: the intruder photos use "
                "ATTENDANCE_INTRUDER_MAX_MB=%d already",
                camera,
                self.settings.intruder_max_mb,
            )
            return None
        root = self.settings.intruders_dir
        name = f"intruder_{local_now:%H%M%S}_{file_safe(camera)}_{uuid.uuid4().hex[:8]}{suffix}"
        path = root / local_now.date().isoformat() / name
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            write_private(path, sealed)
        except OSError as exc:
            log.error("intruder photo from camera %s not saved: %s", camera, exc.strerror or exc)
            return None
        self.disk.added(len(sealed))
        return path
