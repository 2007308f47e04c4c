"""Statistics that cost what the range's *changes* cost, not what the range costs.

A closed day (before today) of the register changes only when a mark or a correction of that
day is recorded, or when the rules change (a timetable recorded, a student's classes or state,
a join day given by hand: ``TallyQueries.forget_tallies``). So each closed day is computed
once with the register's own rules (``Register.entries``: the same definitions as the day's
view) and kept in the database as counts per student and class (``day_tallies``); a statistics
request sums the kept rows in the database and adds today, computed live. A kept day is
computed again when a mark or a correction with a higher id than it saw lands on it, or when
its generation is old.

The first request over a year fills the tallies (a few seconds at 1,000 students); the
server does it in the background at start (``warm``), so no request waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta

from ..db.store import Store
from ..db.tallies import Tally
from ..models import STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT, StudentStats
from .register import Entry, Register

log = logging.getLogger(__name__)

CHUNK_DAYS = 31  # closed days computed together (one read of their marks and corrections)


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


class Tallies:
    def __init__(self, store: Store, register: Register, today: Callable[[], date]) -> None:
        self.store = store
        self.register = register
        self.today = today

    def refresh(self, first: date, last: date) -> int:
        """Make every closed day of the range kept and current; how many were computed."""
        last = min(last, self.today() - timedelta(days=1))
        if last < first:
            return 0
        generation = self.store.register_generation()
        kept = self.store.tallied(first, last, generation)
        if kept:
            low_mark = min(seen[0] for seen in kept.values())
            low_fix = min(seen[1] for seen in kept.values())
            for day, (mark, fix) in self.store.changes_after(low_mark, low_fix).items():
                seen = kept.get(day)
                if seen is not None and (mark > seen[0] or fix > seen[1]):
                    del kept[day]
        missing = [d for d in _days(first, last) if d not in kept]
        start = 0
        while start < len(missing):
            chunk = [missing[start]]
            while (
                start + len(chunk) < len(missing)
                and len(chunk) < CHUNK_DAYS
                and missing[start + len(chunk)] == chunk[-1] + timedelta(days=1)
            ):
                chunk.append(missing[start + len(chunk)])
            self._compute(chunk, generation)
            start += len(chunk)
        return len(missing)

    def _compute(self, days: list[date], generation: int) -> None:
        seen = self.store.change_ids()  # read first: a later change is seen as later
        entries = self.register.entries(days[0], days[-1])
        rows = [
            Tally(day, class_name, student, *counts)
            for (day, class_name, student), counts in counts_of(entries).items()
        ]
        self.store.keep_tallies(days, rows, generation, seen)

    def warm(self) -> None:
        """Fill the tallies of every day on record (the server's start, in the background)."""
        first = self.store.first_day()
        if first is None:
            return
        try:
            done = self.refresh(first, self.today())
        except Exception:  # a failure here only makes the first request slower
            log.exception("could not compute the register's tallies in advance")
            return
        if done:
            log.info("register tallies computed for %d day(s)", done)

    def statistics(
        self,
        first: date,
        last: date,
        class_name: str | None,
        active: list[str],
        alert_below: float,
        student: str | None = None,
    ) -> tuple[list[StudentStats], int]:
        """Per-student statistics of the range (the students of ``active`` always listed) and
        how many days of it had a counted class period: kept days summed by the database,
        today's entries (and any day after) counted live."""
        today = self.today()
        closed_last = min(last, today - timedelta(days=1))
        tally: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in active}
        days_on_record = 0
        if first <= closed_last:
            self.refresh(first, closed_last)
            for row in self.store.tally_sums(first, closed_last, class_name, student):
                counts = tally.setdefault(row.student, [0, 0, 0, 0])
                for index, value in enumerate((row.present, row.late, row.excused, row.absent)):
                    counts[index] += value
            days_on_record = self.store.tallied_day_count(first, closed_last, class_name)
        live_first = max(first, closed_last + timedelta(days=1))
        if live_first <= last:
            entries = self.register.entries(live_first, last, class_name, student)
            live = counts_of(entries)
            days_on_record += len({day for day, _cls, _name in live})
            for (_day, _cls, name), counts in live.items():
                total = tally.setdefault(name, [0, 0, 0, 0])
                for index, value in enumerate(counts):
                    total[index] += value
        stats = []
        for name in sorted(tally, key=lambda n: (n.casefold(), n)):
            present, late, excused, absent = tally[name]
            stat = StudentStats(
                name,
                days_present=present + late,
                days_on_time=present,
                days_late=late,
                total_days=present + late + excused + absent,
                excused=excused,
                absent=absent,
            )
            stats.append(stat.flagged(alert_below))
        return stats, days_on_record


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
