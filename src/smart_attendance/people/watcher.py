"""``GalleryWatcher``: a server follows the enrolments of other processes without a restart.

Every ``WATCH_SECONDS`` a daemon thread reads ``gallery_version`` from the database (one small
query) and, when another process (``attendance enroll``, another server, an upload elsewhere)
changed the photos since, re-runs the incremental enrolment: unchanged files are not read and
every descriptor comes from the cache, so a refresh takes about a second for 10,000 photos.

On PostgreSQL the watcher does not wait for its next poll: a ``ChangeListener`` (db/notify.py)
hears the ``NOTIFY`` sent with every change of the version and wakes it at once. The poll stays,
as the fallback while notifications are interrupted and as the only way on SQLite.
"""

from __future__ import annotations

import logging
import threading

from ..db.notify import ChangeListener, notifies
from ..errors import AttendanceError
from .service import GALLERY_VERSION, EnrolmentService

log = logging.getLogger(__name__)

WATCH_SECONDS = 5.0


class GalleryWatcher:
    def __init__(
        self,
        enrolment: EnrolmentService,
        interval: float = WATCH_SECONDS,
        listen: bool = True,
    ) -> None:
        self.enrolment = enrolment
        self.interval = interval
        self.listener: ChangeListener | None = None
        if listen and notifies(enrolment.store.engine):
            self.listener = ChangeListener(enrolment.store.engine, self._changed)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gallery-watcher", daemon=True)
        self._thread.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; waits (up to ``timeout``) for a refresh under way to finish."""
        self._stop.set()
        self._wake.set()
        if self.listener is not None:
            self.listener.stop(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _changed(self, key: str | None) -> None:
        """A notification: the gallery's version changed (``None``: perhaps, while the
        listener was not listening)."""
        if key in (None, GALLERY_VERSION):
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.enrolment.refresh()
            except AttendanceError as exc:  # the database or the engine failed: next time
                log.warning("gallery refresh failed (the current gallery is kept): %s", exc)
            except Exception:  # never let the thread die: the next poll tries again
                log.exception("gallery refresh failed (the current gallery is kept)")
