"""The register: every rostered student in every class period, with their current status.

A student is *expected* in a class period when they are in the class, the period is on that
day (not a closure day) and it starts after they joined, all as the timetable in force when the
period starts said (``expected.py`` holds that rule, for marking too). Their
status is the correction in force if there is one (``in_force``: the latest, where an undo
takes back the one before it), else their mark (Present or Late), else
``Absent`` once the period has ended, else None (the period runs and they have not been seen).
Marks and corrections whose period is no longer in the timetable keep their place: a timetable
change never rewrites history.

Statistics count expected periods, not "days on which anybody was marked".

A mark keeps when the server received its scan beside when it was seen; an entry whose mark
reached the server more than ``punctuality.ARRIVED_LATE_AFTER`` after it was seen *arrived
late* (a queued scan sent much later, or a capture time set back) and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from ..db.store import Store, StudentRow
from ..models import (
    STATUS_ABSENT,
    STATUS_EXCUSED,
    STATUS_LATE,
    STATUS_PRESENT,
    UNDO,
    Correction,
    Mark,
    StudentStats,
)
from .expected import expected_in
from .punctuality import arrived_late
from .timetable import Slot, minutes_text

SlotKey = tuple[date, str, str, str]  # day, class, period, student


@dataclass(frozen=True)
class Entry:
    """One student in one class period of one day."""

    day: date
    class_name: str
    period: str  # start, HH:MM
    period_end: str
    student: str
    status: str | None
    time: str | None = None  # HH:MM:SS of the mark
    source: str = ""
    reason: str = ""
    corrected: bool = False
    received_at: datetime | None = None  # when the mark's scan reached the server (local)
    arrived_late: bool = False  # received long after it was seen (ARRIVED_LATE_AFTER)

    @property
    def received(self) -> str:
        """``YYYY-MM-DD HH:MM:SS``, local, when the mark's scan reached the server ("")."""
        return f"{self.received_at:%Y-%m-%d %H:%M:%S}" if self.received_at else ""

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"name": self.student, "status": self.status}
        if self.time:
            body["time"] = self.time
        if self.source:
            body["source"] = self.source
        if self.reason:
            body["reason"] = self.reason
        if self.arrived_late and self.received_at is not None:
            body["arrived_late"] = True
            body["received_at"] = self.received_at.isoformat(timespec="seconds")
        return body


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


class Register:
    def __init__(
        self,
        store: Store,
        slots: Callable[[date, str | None], list[Slot]],
        local_now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.slots = slots  # the class periods of a day (of one class), as they were governed
        self.local_now = local_now

    def entries(
        self,
        first: date,
        last: date,
        class_name: str | None = None,
        student: str | None = None,
    ) -> list[Entry]:
        """Every expected student (or only ``student``) and every recorded mark or correction
        in the range."""
        now = self.local_now()
        zone = now.tzinfo or timezone.utc
        marks = {_key(m): m for m in self.store.marks_between(first, last, class_name, student)}
        history: dict[SlotKey, list[Correction]] = {}
        for fix in self.store.corrections_between(first, last, class_name, student):
            history.setdefault((fix.day, fix.class_name, fix.period, fix.name), []).append(fix)
        fixes = {key: in_force(rows) for key, rows in history.items()}
        students = [s for s in self.store.students() if s.active and student in (None, s.name)]
        out: dict[SlotKey, Entry] = {}
        for day in days(first, last):
            for slot in self.slots(day, class_name):
                for student in self._roster(students, slot, zone):
                    key = (day, slot.class_name, slot.period.label, student)
                    ended = slot.period.has_ended(day, now)
                    out[key] = _entry(
                        key,
                        minutes_text(slot.period.end),
                        marks.get(key),
                        fixes.get(key),
                        ended,
                        zone,
                    )
        for key in set(marks) | set(fixes):  # history outside today's timetable
            if key not in out:
                mark = marks.get(key)
                end = mark.period_end if mark else "24:00"
                out[key] = _entry(key, end, mark, fixes.get(key), True, zone)
        return sorted(out.values(), key=lambda e: (e.day, e.period, e.class_name, e.student))

    @staticmethod
    def _roster(students: list[StudentRow], slot: Slot, zone: tzinfo) -> list[str]:
        return sorted(
            (s.name for s in students if expected_in(s, slot, zone)),
            key=lambda n: (n.casefold(), n),
        )

    def statistics(
        self, first: date, last: date, class_name: str | None = None, alert_below: float = 0.0
    ) -> list[StudentStats]:
        """Per-student counts over the expected periods of the range (registry order)."""
        return self.statistics_of(self.entries(first, last, class_name), alert_below)

    def statistics_of(self, entries: list[Entry], alert_below: float = 0.0) -> list[StudentStats]:
        """Per-student statistics of ``entries``: every active student, and every student
        with an entry (one of a period still running counts nothing)."""
        tally: dict[str, list[int]] = {}
        for student in self.store.students():
            if student.active:
                tally.setdefault(student.name, [0, 0, 0, 0])
        for entry in entries:
            tally.setdefault(entry.student, [0, 0, 0, 0])
        for (_day, _cls, name), counts in counts_of(entries).items():
            total = tally[name]
            for index, value in enumerate(counts):
                total[index] += value
        return [
            stats_row(name, tally[name], alert_below)
            for name in sorted(tally, key=lambda n: (n.casefold(), n))
        ]


def counts_of(entries: list[Entry]) -> dict[tuple[date, str, str], list[int]]:
    """(day, class, student) -> [present, late, excused, absent], as ``statistics_of`` counts:
    an entry without a status (a period still running) is not counted, and any status other
    than Present, Late and Excused counts as Absent."""
    out: dict[tuple[date, str, str], list[int]] = {}
    for entry in entries:
        if entry.status is None:
            continue
        counts = out.setdefault((entry.day, entry.class_name, entry.student), [0, 0, 0, 0])
        index = {STATUS_PRESENT: 0, STATUS_LATE: 1, STATUS_EXCUSED: 2}.get(entry.status, 3)
        counts[index] += 1
    return out


def stats_row(name: str, counts: Sequence[int], alert_below: float) -> StudentStats:
    present, late, excused, absent = counts
    return StudentStats(
        name,
        days_present=present + late,
        days_on_time=present,
        days_late=late,
        total_days=present + late + excused + absent,
        excused=excused,
        absent=absent,
    ).flagged(alert_below)


def in_force(history: list[Correction]) -> Correction | None:
    """The correction in force after ``history`` (oldest first): each correction stacks on the
    one before, an undo (``UNDO``) takes the top one back; None when none is left."""
    stack: list[Correction] = []
    for fix in history:
        if fix.new_status == UNDO:
            if stack:
                stack.pop()
        else:
            stack.append(fix)
    return stack[-1] if stack else None


def _key(mark: Mark) -> SlotKey:
    return (mark.day, mark.class_name, mark.period, mark.name)


def _entry(
    key: SlotKey,
    period_end: str,
    mark: Mark | None,
    fix: Correction | None,
    ended: bool,
    zone: tzinfo = timezone.utc,
) -> Entry:
    day, class_name, period, student = key
    time = mark.seen_at.strftime("%H:%M:%S") if mark else None
    source = (mark.source or f"camera:{mark.camera}") if mark else ""
    if fix is not None:
        return Entry(
            day,
            class_name,
            period,
            period_end,
            student,
            fix.new_status,
            time,
            fix.by,
            fix.reason,
            corrected=True,
        )
    if mark is not None:
        received = (
            mark.received_at.replace(tzinfo=timezone.utc).astimezone(zone)
            if mark.received_at is not None
            else None
        )
        return Entry(
            day,
            class_name,
            period,
            period_end,
            student,
            mark.status,
            time,
            source,
            received_at=received,
            arrived_late=arrived_late(mark.seen_at, mark.received_at, zone),
        )
    return Entry(day, class_name, period, period_end, student, STATUS_ABSENT if ended else None)
