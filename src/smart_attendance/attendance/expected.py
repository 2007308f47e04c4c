"""Who is expected in which class period: the one rule that marking, the register (and so the
statistics, the reports, the exports and the pages) and corrections follow.

* A student is **in a class** when the class's roster names them (or is everyone, ``"*"``) or
  the registry gives them the class beside the rosters (the Enrol page's Classes, ``classes``
  in ``POST /students`` and ``PATCH /students/<name>``): ``SchoolClass.holds(name, classes)``.
  A student who left (inactive) is in no class.
* A **sighting marks** every period of the student's classes that counts at that moment (open,
  or about to open): ``open_slots``.
* A student is **expected** in a period (Absent if it ends with no mark) when they are in the
  class and the period starts at or after the moment they joined (the default all-day period
  starts at ATTENDANCE_CLASS_START for this): a student added at 10:00 is not Absent for that
  morning's 08:30 (``StudentRow.joined_at``; a join date given by hand, and
  the rows from before that column, count from the start of ``joined_on``): ``expected_in``.
  A student seen in a period that started before they joined is marked all the same.
* A period is **governed by the timetable in force when it starts**: a timetable adopted at
  11:00 adds its periods from 11:00 on, and the morning keeps the periods of the timetable
  it had: ``governing_slots``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone, tzinfo

from ..db.store import StudentRow
from .timetable import DAY_MINUTES, Slot, Timetable


@dataclass(frozen=True)
class InForce:
    """A timetable and the moment (local, aware) it came into force on a day; ``since`` None:
    it was in force when the day began."""

    timetable: Timetable
    since: datetime | None = None


def in_class(row: StudentRow, slot: Slot) -> bool:
    """Whether the (active) student is in the class of ``slot``."""
    return row.active and slot.school_class.holds(row.name, row.classes)


def open_slots(timetable: Timetable, row: StudentRow, local: datetime) -> list[Slot]:
    """The periods a sighting of the student at ``local`` marks (none: outside every period,
    or a student who left)."""
    if not row.active:
        return []
    return timetable.slots_for(row.name, local, row.classes)


def slot_start(slot: Slot, zone: tzinfo) -> datetime:
    """When ``slot`` begins, local and aware: its start (the class start for the default
    all-day period, ``Period.begins``)."""
    minutes = min(slot.period.begins, DAY_MINUTES - 1)
    return datetime.combine(slot.day, time(minutes // 60, minutes % 60), tzinfo=zone)


def joined(row: StudentRow, zone: tzinfo) -> datetime:
    """The moment the student counts as joined, local and aware."""
    if row.joined_at is not None:
        return row.joined_at.replace(tzinfo=timezone.utc).astimezone(zone)
    return datetime.combine(row.joined_on, time(0, 0), tzinfo=zone)


def expected_in(row: StudentRow, slot: Slot, zone: tzinfo) -> bool:
    """Whether the student is expected in ``slot``: in its class, and joined by its start."""
    return in_class(row, slot) and joined(row, zone) <= slot_start(slot, zone)


def governing_slots(
    plan: Sequence[InForce], day: date, zone: tzinfo, class_name: str | None = None
) -> list[Slot]:
    """The periods of ``day`` (of one class, or all), each from the timetable in force when it
    starts; ``plan`` lists the day's timetables in the order they came into force."""
    out: list[Slot] = []
    for index, in_force in enumerate(plan):
        until = plan[index + 1].since if index + 1 < len(plan) else None
        for slot in in_force.timetable.slots_on(day, class_name):
            start = slot_start(slot, zone)
            if in_force.since is not None and start < in_force.since:
                continue
            if until is not None and start >= until:
                continue
            out.append(slot)
    return sorted(out, key=lambda s: (s.period.start, s.class_name))
