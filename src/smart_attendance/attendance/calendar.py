"""Days of the register: one status per day for a student, and the statuses counted per day
for a class (the dashboard's calendar and chart).

A student's day is summed up from the class periods they were expected in that day, the worst
first: ``Absent`` when any period is an unexcused absence, else ``Late`` when any is Late, else
``Excused`` when any is excused, else ``Present`` (every period Present). Periods still running
(no status yet) do not count while another period of the day has one; a day whose periods all
run still is ``Not yet seen``, a day without any period ``No class``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from ..models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT
from .register import Entry, days

NOT_YET = "Not yet seen"
NO_CLASS = "No class"
WORST_FIRST = (STATUS_ABSENT, STATUS_LATE, STATUS_EXCUSED, STATUS_PRESENT)
DAY_STATUSES = (STATUS_PRESENT, STATUS_LATE, STATUS_ABSENT, STATUS_EXCUSED, NOT_YET, NO_CLASS)
EXPECTED = (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT)


def day_status(statuses: Iterable[str | None]) -> str:
    """The status of one day from the statuses of its periods (None: not known yet)."""
    seen = list(statuses)
    if not seen:
        return NO_CLASS
    known = {s for s in seen if s is not None}
    if not known:
        return NOT_YET
    return next((s for s in WORST_FIRST if s in known), STATUS_PRESENT)


@dataclass(frozen=True)
class Day:
    """One day of a student: its status and the periods it comes from (time order)."""

    day: date
    status: str
    entries: tuple[Entry, ...]

    @property
    def detail(self) -> str:
        """Each period in words: ``08:30 math-7b Present; 09:00 art Late``."""
        return "; ".join(f"{e.period} {e.class_name} {e.status or NOT_YET}" for e in self.entries)


def student_days(entries: Iterable[Entry], first: date, last: date) -> dict[date, Day]:
    """Every day from ``first`` to ``last`` with its status, from one student's entries."""
    by_day: dict[date, list[Entry]] = {}
    for entry in entries:
        by_day.setdefault(entry.day, []).append(entry)
    out = {}
    for day in days(first, last):
        rows = tuple(sorted(by_day.get(day, ()), key=lambda e: (e.period, e.class_name)))
        out[day] = Day(day, day_status(e.status for e in rows), rows)
    return out


def daily_counts(entries: Iterable[Entry]) -> list[tuple[date, Counter[str]]]:
    """The statuses counted per day (``Not yet seen`` for a period still running), for the
    days that had a class period, in order."""
    counts: dict[date, Counter[str]] = {}
    for entry in entries:
        counts.setdefault(entry.day, Counter())[entry.status or NOT_YET] += 1
    return sorted(counts.items())


def attendance_pct(counts: Counter[str] | dict[str, int]) -> float | None:
    """Present and Late over the periods with a status (Excused counts as expected, as in the
    statistics); None when no period of the day has a status yet."""
    expected = sum(counts.get(s, 0) for s in EXPECTED)
    if not expected:
        return None
    present = counts.get(STATUS_PRESENT, 0) + counts.get(STATUS_LATE, 0)
    return round(100.0 * present / expected, 1)


def tally(days_: Sequence[Day]) -> Counter[str]:
    """How many days of each status."""
    return Counter(d.status for d in days_)
