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
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from ..db.store import Store
from ..db.tallies import Tally
from ..models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT, StudentStats
from .calendar import NOT_YET
from .register import Register, counts_of, days, stats_row

COUNTED = (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT)

log = logging.getLogger(__name__)

CHUNK_DAYS = 31  # closed days computed together (one read of their marks and corrections)
SUMS_KEPT = 32  # ranges whose closed days' sums are kept in memory


class Tallies:
    def __init__(self, store: Store, register: Register, today: Callable[[], date]) -> None:
        self.store = store
        self.register = register
        self.today = today
        # the closed days' sums of recent requests, by range and by the kept days' state:
        # a statistics file rewritten every few seconds reads the database's sums once
        self._sums: dict[tuple[object, ...], tuple[object, list[Tally], list[Tally]]] = {}
        self._sums_lock = threading.Lock()

    def refresh(self, first: date, last: date) -> int:
        """Make every closed day of the range kept and current; how many were computed."""
        return self._refresh(first, last)[0]

    def _refresh(self, first: date, last: date) -> tuple[int, object]:
        """``refresh``, and the state of the kept days it found (the generation and each
        day's watermarks, as the database holds them: the same state on every server)."""
        last = min(last, self.today() - timedelta(days=1))
        if last < first:
            return 0, None
        generation = self.store.register_generation()
        kept = self.store.tallied(first, last, generation)
        state = (generation, tuple(sorted(kept.items())))
        if kept:
            low_mark = min(seen[0] for seen in kept.values())
            low_fix = min(seen[1] for seen in kept.values())
            for day, (mark, fix) in self.store.changes_after(low_mark, low_fix).items():
                seen = kept.get(day)
                if seen is not None and (mark > seen[0] or fix > seen[1]):
                    del kept[day]
        missing = [d for d in days(first, last) if d not in kept]
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
        return len(missing), state

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

    def counts(
        self,
        first: date,
        last: date,
        classes: Sequence[str] | None = None,
        student: str | None = None,
    ) -> RangeCounts:
        """The range's counts per student and per day, of some classes (None: all) or one
        student: kept days summed by the database, today (and any day after) counted live."""
        today = self.today()
        closed_last = min(last, today - timedelta(days=1))
        out = RangeCounts({}, {})
        if first <= closed_last:
            per_student, per_day = self._closed_sums(first, closed_last, classes, student)
            for row in per_student:
                out.add_student(row.student, [row.present, row.late, row.excused, row.absent])
            for row in per_day:
                assert row.day is not None
                out.add_day(row.day, [row.present, row.late, row.excused, row.absent])
        live_first = max(first, closed_last + timedelta(days=1))
        if live_first <= last:
            one = classes[0] if classes is not None and len(classes) == 1 else None
            entries = [
                e
                for e in self.register.entries(live_first, last, one, student)
                if classes is None or e.class_name in classes
            ]
            for (day, _cls, name), counts in counts_of(entries).items():
                out.add_student(name, counts)
                out.add_day(day, counts)
            for entry in entries:
                if entry.status is None:  # a period still running: listed, not counted
                    out.students.setdefault(entry.student, [0, 0, 0, 0])
                    out.days.setdefault(entry.day, Counter())[NOT_YET] += 1
        return out

    def _closed_sums(
        self, first: date, last: date, classes: Sequence[str] | None, student: str | None
    ) -> tuple[list[Tally], list[Tally]]:
        """The kept days' sums per student and per day, from the database, or as the last
        request had them when no kept day changed since (and none had to be computed)."""
        computed, state = self._refresh(first, last)
        key = (first, last, None if classes is None else tuple(classes), student)
        with self._sums_lock:
            found = self._sums.get(key)
        if computed == 0 and found is not None and found[0] == state:
            return found[1], found[2]
        per_student = self.store.tally_sums(first, last, classes, student)
        per_day = self.store.tally_sums(first, last, classes, student, by_day=True)
        if computed == 0:
            with self._sums_lock:
                if len(self._sums) >= SUMS_KEPT:
                    self._sums.pop(next(iter(self._sums)))
                self._sums[key] = (state, per_student, per_day)
        return per_student, per_day

    def statistics(
        self,
        first: date,
        last: date,
        class_name: str | None,
        active: list[str],
        alert_below: float,
    ) -> tuple[list[StudentStats], int]:
        """Per-student statistics of the range (the students of ``active`` always listed) and
        how many days of it had a counted class period."""
        found = self.counts(first, last, None if class_name is None else (class_name,))
        tally = {name: [0, 0, 0, 0] for name in active}
        for name, counts in found.students.items():
            tally[name] = counts
        stats = [
            stats_row(name, tally[name], alert_below)
            for name in sorted(tally, key=lambda n: (n.casefold(), n))
        ]
        return stats, found.days_on_record


@dataclass(frozen=True)
class RangeCounts:
    """Counts of a range: per student [present, late, excused, absent] (a student expected
    in a period still running is listed with what they have), per day the statuses counted
    (``NOT_YET`` for a period still running)."""

    students: dict[str, list[int]]
    days: dict[date, Counter[str]]

    def add_student(self, name: str, counts: Sequence[int]) -> None:
        total = self.students.setdefault(name, [0, 0, 0, 0])
        for index, value in enumerate(counts):
            total[index] += value

    def add_day(self, day: date, counts: Sequence[int]) -> None:
        found = self.days.setdefault(day, Counter())
        for status, value in zip(COUNTED, counts, strict=True):
            if value:
                found[status] += value

    @property
    def days_on_record(self) -> int:
        """Days with a counted class period."""
        return sum(1 for counts in self.days.values() if any(counts[s] for s in COUNTED))

    def daily(self) -> list[tuple[date, Counter[str]]]:
        return sorted(self.days.items())
