"""``IntruderService``: consecutive unknown faces per camera, and the photo saved at the streak.

A camera's streak counts frames answered ``unknown_face``; a known face resets it, frames with
no face leave it as it is. At ``ATTENDANCE_INTRUDER_THRESHOLD`` the frame is saved under
``intruders/YYYY-MM-DD/`` and recorded in the database, and the streak starts again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path

from ..config import Settings
from ..db.store import Store
from ..engine import imaging
from ..models import Clock

log = logging.getLogger(__name__)


class IntruderService:
    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._streaks: dict[str, int] = {}
        self._lock = threading.Lock()

    def known(self, camera: str) -> None:
        """A student was recognised at ``camera``: its streak starts again."""
        with self._lock:
            self._streaks[camera] = 0

    def unknown(self, camera: str, data: bytes) -> Path | None:
        """An unknown face at ``camera`` (``data``: the frame); the saved photo's path when this
        frame completes a streak."""
        with self._lock:
            count = self._streaks.get(camera, 0) + 1
            capture = count >= self.settings.intruder_threshold
            self._streaks[camera] = 0 if capture else count
        return self._save(camera, data) if capture else None

    def _save(self, camera: str, data: bytes) -> Path:
        local_now = self.clock().astimezone(self.settings.zone)
        info = imaging.probe(data, self.settings.max_image_pixels)
        folder = self.settings.intruders_dir / local_now.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        name = f"intruder_{local_now:%H%M%S}_{camera}_{uuid.uuid4().hex[:8]}{info.suffix}"
        path = folder / name
        with open(path, "xb") as handle:
            handle.write(data)
        self.store.record_intruder(
            local_now.date(), local_now.replace(tzinfo=None), camera, str(path)
        )
        log.warning("intruder photo saved from camera %s: %s", camera, path.name)
        return path
