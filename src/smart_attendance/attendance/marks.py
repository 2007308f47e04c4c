"""``AttendanceService``: marks, one per student per class period, Present or Late.

A sighting marks every class period in progress (or opening) whose roster holds the student;
a sighting outside every period is kept as a sighting, not a mark. Every mark goes through the
store's unique constraint, so concurrent requests and several server processes record exactly
one. A student already marked in a period is answered by one read of the mark by its unique key
(an index), without a write; nothing is remembered in memory, so every server answers the same
whatever was corrected, renamed, erased or purged on another.
Without a timetable there is one class, ``default``, with one period all day: one mark a day.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ..config import Settings
from ..db.store import Store, StudentRow
from ..errors import BadRequestError, CaptureTimeError
from ..models import (
    CLOSURE_DAY,
    NO_PERIOD_NOW,
    NOT_IN_A_CLASS,
    STUDENT_LEFT,
    Clock,
    Mark,
    MarkOutcome,
    MarkResult,
    StudentStats,
)
from .expected import InForce, governing_slots, open_slots
from .punctuality import check_window, parse_capture_time
from .register import Register
from .tallies import Tallies
from .timetable import Slot, Timetable, from_row, minutes_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    first: date
    last: date
    days_on_record: int
    students: list[StudentStats]


class AttendanceService:
    def __init__(
        self, settings: Settings, store: Store, clock: Clock, timetable: Timetable
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.timetable = timetable
        self.register = Register(store, self.day_slots, self.local_now)
        self.tallies = Tallies(store, self.register, self.today)
        # (effective_from, effective_at UTC or None, timetable), oldest first
        self._history: list[tuple[date, datetime | None, Timetable]] | None = None
        self._lock = threading.Lock()

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.settings.zone)

    def today(self) -> date:
        return self.local_now().date()

    def seen_at(self, captured_at: str | None) -> datetime:
        """When the face was seen, in the class's zone: the client's capture time when it is
        trusted (ATTENDANCE_TRUST_CLIENT_CLOCK), else now. A trusted capture time older than
        ATTENDANCE_CLOCK_WINDOW_HOURS, or in the future, is a ``CaptureTimeError``: the scan
        is refused, never marked at another time than the one it claims."""
        now = self.local_now()
        if not captured_at:
            return now
        stamp = parse_capture_time(captured_at)
        if not self.settings.trust_client_clock:
            return now
        try:
            check_window(stamp, now, self.settings.clock_window_hours)
        except CaptureTimeError as exc:
            log.warning("scan refused: %s", exc)
            raise
        return stamp.astimezone(self.settings.zone)

    def mark(
        self,
        names: Sequence[str],
        seen_at: datetime,
        camera: str,
        event_id: str | None,
        source: str | None = None,
        key_name: str = "",
        received_at: datetime | None = None,
    ) -> list[MarkResult]:
        """Mark each student in every class period the sighting counts for (the first
        sighting in a period wins); ``event_id`` makes a resend of the same scan harmless:
        the same student with the same event id is marked once, whatever the day; another
        student with that id is marked all the same (an id never stands for a student).
        ``source``: how the mark is signed (default ``camera:CAMERA``; a reviewed photo:
        ``review:USER``); ``key_name``: the camera key that sent the scan ("": the master
        key); ``received_at``: when the scan reached the server (default now)."""
        received = (received_at or self.clock()).astimezone(timezone.utc).replace(tzinfo=None)
        results = []
        for name in names:
            row = self.store.student(name)
            if row is None:
                # Recognised by a gallery not yet refreshed after the student was erased (or
                # renamed) through another process: nothing is recorded under that name.
                log.info("a face of a student no longer in the registry was not marked")
                continue
            slots = open_slots(self.timetable, row, seen_at)
            if not slots:
                self.store.record_sighting(name, seen_at.replace(tzinfo=None), camera)
                why = self.not_marked(row, seen_at)
                log.info("%s seen outside every class period: %s (camera %s)", name, why, camera)
                time_text = seen_at.strftime("%H:%M:%S")
                results.append(MarkResult(name, None, False, time_text, reason=why))
                continue
            for slot in slots:
                results.append(
                    self._mark_slot(
                        name, slot, seen_at, camera, event_id, received, source, key_name
                    )
                )
        return results

    def slots(self, name: str, seen_at: datetime) -> list[Slot]:
        """The class periods ``name`` would be marked in at ``seen_at`` (none: outside them,
        an unknown student or one who left): ``expected.open_slots``."""
        row = self.store.student(name)
        return [] if row is None else open_slots(self.timetable, row, seen_at)

    def not_marked(self, row: StudentRow, seen_at: datetime) -> str:
        """Why a sighting of the student at ``seen_at`` marks no period (``NOT_MARKED``)."""
        if not row.active:
            return STUDENT_LEFT
        if self.timetable.closure_on(seen_at.date()) is not None:
            return CLOSURE_DAY
        if not self.timetable.classes_of(row.name, row.classes):
            return NOT_IN_A_CLASS
        return NO_PERIOD_NOW

    def _mark_slot(
        self,
        name: str,
        slot: Slot,
        seen_at: datetime,
        camera: str,
        event_id: str | None,
        received_at: datetime,
        source: str | None = None,
        key_name: str = "",
    ) -> MarkResult:
        period = slot.period
        mark = Mark(
            name,
            seen_at.date(),
            seen_at.replace(tzinfo=None),
            period.punctuality(seen_at),
            camera,
            slot.class_name,
            period.label,
            minutes_text(period.end),
            minutes_text(period.late_from),
            source or f"camera:{camera}",
            key_name=key_name,
            received_at=received_at,
        )
        default = self.timetable.is_default
        # Unique per student in the store (event id, student): a scan naming several students
        # marks each of them, and a resend marks none again.
        mark_event = None
        if event_id:
            mark_event = event_id if default else f"{event_id}/{slot.class_name}@{period.label}"
        known = self.store.mark_for(name, slot.day, slot.class_name, period.label)
        outcome = MarkOutcome(known, False) if known else self.store.record_mark(mark, mark_event)
        if outcome.new:
            log.info(
                "marked %s %s in %s %s (camera %s)",
                name,
                outcome.mark.status,
                slot.class_name,
                period.label,
                camera,
            )
        return MarkResult(
            outcome.mark.name,
            outcome.mark.status,
            outcome.new,
            outcome.mark.seen_at.strftime("%H:%M:%S"),
            None if default else outcome.mark.class_name,
            None if default else outcome.mark.period,
        )

    def statistics(
        self, first: date | None = None, last: date | None = None, class_name: str | None = None
    ) -> list[StudentStats]:
        """Per-student statistics over the range (default: from the first day on record to
        today), flagged under ATTENDANCE_ALERT_BELOW_PCT."""
        return self.summary(first, last, class_name).students

    def summary(
        self, first: date | None = None, last: date | None = None, class_name: str | None = None
    ) -> Summary:
        """Statistics over a range, and how many days of it had a class on record."""
        self.check_class(class_name)
        first, last = self.span(first, last)
        active = [s.name for s in self.store.students() if s.active]
        alert = self.settings.alert_below_pct
        students, days = self.tallies.statistics(first, last, class_name, active, alert)
        return Summary(first, last, days, students)

    def span(self, first: date | None, last: date | None) -> tuple[date, date]:
        """A range with its defaults: up to today, from the first day on record (at most
        ATTENDANCE_MAX_RANGE_DAYS back); a longer range is a ``BadRequestError``."""
        last = last or self.today()
        if first is None:
            earliest = last - timedelta(days=self.settings.max_range_days - 1)
            first = max(min(self.store.first_day() or last, last), earliest)
        self.check_range(first, last)
        return first, last

    def check_range(self, first: date, last: date) -> None:
        """A range no longer than ATTENDANCE_MAX_RANGE_DAYS (what a request may cost)."""
        if last < first:
            raise BadRequestError("to is before from")
        length = (last - first).days + 1
        if length > self.settings.max_range_days:
            raise BadRequestError(
                f"a range is at most {self.settings.max_range_days} days "
                f"(ATTENDANCE_MAX_RANGE_DAYS): {first.isoformat()} to {last.isoformat()} is "
                f"{length} days; ask for a shorter one"
            )

    def check_class(self, class_name: str | None) -> None:
        if class_name is not None and self.timetable.school_class(class_name) is None:
            known = ", ".join(c.name for c in self.timetable.classes)
            raise BadRequestError(f"unknown class {class_name!r} (classes: {known})")

    def forget(self) -> None:
        """Drop the timetables read from the database (after a correction or a change); marks
        are never kept in memory."""
        with self._lock:
            self._history = None

    # --- the timetable in force on each day ---------------------------------------------------

    def adopt_timetable(self) -> bool:
        """Record this process's timetable as the one in force from now on (the server does
        this at start); True when it differs from the latest recorded one."""
        now = self.clock().astimezone(timezone.utc).replace(tzinfo=None)
        recorded = self.store.record_timetable(self.timetable.as_row(self.today(), now))
        if recorded:
            log.info(
                "timetable in force from %s: %s",
                self.local_now().strftime("%Y-%m-%d %H:%M"),
                self.timetable.source or "the default (no ATTENDANCE_TIMETABLE)",
            )
        with self._lock:
            self._history = None
        return recorded

    def _timetables(self) -> list[tuple[date, datetime | None, Timetable]]:
        with self._lock:
            history = self._history
        if history is None:
            loaded: dict[str, Timetable] = {}
            history = []
            for row in self.store.timetable_history():
                if row.digest not in loaded:
                    loaded[row.digest] = (
                        self.timetable
                        if row.digest == self.timetable.digest
                        else from_row(row, self.settings)
                    )
                history.append((row.effective_from, row.effective_at, loaded[row.digest]))
            with self._lock:
                self._history = history
        return history

    def in_force(self, day: date) -> list[InForce]:
        """The timetables of ``day`` in the order they came into force: the one in force when
        the day began (the first recorded for days before any), then each recorded during
        the day, from the moment it was; this process's own when none is recorded."""
        history = self._timetables()
        if not history:
            return [InForce(self.timetable)]
        zone = self.settings.zone
        plan = [InForce(history[0][2])]
        for effective_from, effective_at, timetable in history:
            if effective_from < day or (effective_from == day and effective_at is None):
                plan = [InForce(timetable)]
            elif effective_from == day and effective_at is not None:
                since = effective_at.replace(tzinfo=timezone.utc).astimezone(zone)
                plan.append(InForce(timetable, since))
        return plan

    def timetable_on(self, day: date) -> Timetable:
        """The timetable in force at the end of ``day`` (its closures are the day's)."""
        return self.in_force(day)[-1].timetable

    def day_slots(self, day: date, class_name: str | None = None) -> list[Slot]:
        """The class periods of ``day``, each from the timetable in force when it starts."""
        return governing_slots(self.in_force(day), day, self.settings.zone, class_name)
