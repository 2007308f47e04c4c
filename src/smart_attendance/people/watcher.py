"""``GalleryWatcher``: a server follows the enrolments of other processes without a restart.

Every ``WATCH_SECONDS`` a daemon thread reads ``gallery_version`` from the database (one small
query) and, when another process (``attendance enroll``, another server, an upload elsewhere)
changed the photos since, re-runs the incremental enrolment: unchanged files are not read and
every descriptor comes from the cache, so a refresh takes about a second for 10,000 photos.
"""

from __future__ import annotations

import logging
import threading

from ..errors import AttendanceError
from .service import EnrolmentService

log = logging.getLogger(__name__)

WATCH_SECONDS = 5.0


class GalleryWatcher:
    def __init__(self, enrolment: EnrolmentService, interval: float = WATCH_SECONDS) -> None:
        self.enrolment = enrolment
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gallery-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; waits (up to ``timeout``) for a refresh under way to finish."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.enrolment.refresh()
            except AttendanceError as exc:  # the database or the engine failed: next time
                log.warning("gallery refresh failed (the current gallery is kept): %s", exc)
            except Exception:  # never let the thread die: the next poll tries again
                log.exception("gallery refresh failed (the current gallery is kept)")
