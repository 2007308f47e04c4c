"""``AttendanceService``: marks, one per student per local day, Present or Late.

Every mark goes through the store's unique constraint, so concurrent requests and several server
processes record exactly one. A student already marked today is answered from memory, without
a database write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import date, datetime

from ..config import Settings
from ..db.store import Store
from ..models import Clock, Mark, MarkOutcome, MarkResult, StudentStats
from .punctuality import parse_capture_time, plausible, punctuality

log = logging.getLogger(__name__)

CACHE_LIMIT = 100_000


class AttendanceService:
    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._marked: dict[tuple[str, date], Mark] = {}

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.settings.zone)

    def today(self) -> date:
        return self.local_now().date()

    def seen_at(self, captured_at: str | None) -> datetime:
        """When the face was seen, in the class's zone: the client's capture time when it is
        trusted and plausible (not in the future, at most 7 days old), else now."""
        now = self.local_now()
        if not captured_at:
            return now
        stamp = parse_capture_time(captured_at)
        if not self.settings.trust_client_clock:
            return now
        if not plausible(stamp, now):
            log.warning("ignoring an implausible capture time from a client")
            return now
        return stamp.astimezone(self.settings.zone)

    def mark(
        self, names: Sequence[str], seen_at: datetime, camera: str, event_id: str | None
    ) -> list[MarkResult]:
        """Mark each student (first sighting of the day wins); ``event_id`` makes a resend of
        the same scan harmless."""
        status = punctuality(seen_at, self.settings)
        results = []
        for number, name in enumerate(names, start=1):
            mark = Mark(name, seen_at.date(), seen_at.replace(tzinfo=None), status, camera)
            mark_event = f"{event_id}/{number}" if event_id else None
            outcome = self._known(name, mark.day) or self.store.record_mark(mark, mark_event)
            self._remember(outcome.mark)
            if outcome.new:
                log.info("marked %s %s (camera %s)", name, outcome.mark.status, camera)
            results.append(
                MarkResult(
                    outcome.mark.name,
                    outcome.mark.status,
                    outcome.new,
                    outcome.mark.seen_at.strftime("%H:%M:%S"),
                )
            )
        return results

    def statistics(self, enrolled: Sequence[str]) -> list[StudentStats]:
        return self.store.statistics(enrolled=enrolled)

    def _known(self, name: str, day: date) -> MarkOutcome | None:
        with self._lock:
            mark = self._marked.get((name, day))
        return MarkOutcome(mark, False) if mark else None

    def _remember(self, mark: Mark) -> None:
        with self._lock:
            if len(self._marked) > CACHE_LIMIT:
                self._marked.clear()
            self._marked[(mark.name, mark.day)] = mark
