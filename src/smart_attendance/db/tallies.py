"""The queries of the register's per-day tallies, mixed into ``Store`` (``attendance/tallies.py``
decides what they hold): a closed day's counts per student and class, which days are kept and
under which generation, and sums over a range done by the database.

The generation (``meta`` key ``register_generation``) goes up when a change may alter days
already kept: a timetable recorded, a student's classes or state changed, a student added with
a join day in the past. A kept day of an older generation is computed again when next needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .tables import corrections, day_tallies, marks, tallied_days

GENERATION = "register_generation"


@dataclass(frozen=True)
class Tally:
    """One student's counts in one class on one day (or summed over a range)."""

    day: date | None
    class_name: str
    student: str
    present: int
    late: int
    excused: int
    absent: int


class TallyQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def meta_number(self, key: str) -> int:  # provided by Store
        raise NotImplementedError

    def bump_meta(self, key: str) -> int:  # provided by Store
        raise NotImplementedError

    def register_generation(self) -> int:
        return self.meta_number(GENERATION)

    def forget_tallies(self) -> int:
        """Every kept day is computed again when next needed; the new generation."""
        return self.bump_meta(GENERATION)

    def tallied(self, first: date, last: date, generation: int) -> dict[date, tuple[int, int]]:
        """The days of the range kept under ``generation``, with the highest mark and
        correction ids they were computed after."""
        t = tallied_days.c
        with self._begin() as conn:
            rows = conn.execute(
                select(t.day, t.marks_seen, t.corrections_seen).where(
                    t.day.between(first, last), t.generation == generation
                )
            ).all()
        return {r.day: (int(r.marks_seen), int(r.corrections_seen)) for r in rows}

    def changes_after(self, after_mark: int, after_correction: int) -> dict[date, tuple[int, int]]:
        """Per day, the highest id of its marks above ``after_mark`` and of its corrections
        above ``after_correction`` (0: none); reads only the rows added since (the ids'
        index)."""
        out: dict[date, tuple[int, int]] = {}
        with self._begin() as conn:
            for day, top in conn.execute(
                select(marks.c.day, func.max(marks.c.id))
                .where(marks.c.id > after_mark)
                .group_by(marks.c.day)
            ):
                out[day] = (int(top), 0)
            for day, top in conn.execute(
                select(corrections.c.day, func.max(corrections.c.id))
                .where(corrections.c.id > after_correction)
                .group_by(corrections.c.day)
            ):
                out[day] = (out.get(day, (0, 0))[0], int(top))
        return out

    def keep_tallies(
        self,
        days: Sequence[date],
        rows: Sequence[Tally],
        generation: int,
        seen: tuple[int, int],
    ) -> None:
        """Replace the tallies of ``days`` by ``rows`` and mark them kept, in one transaction;
        another server keeping the same days at the same moment wins (nothing is lost: both
        computed the same counts)."""
        if not days:
            return
        try:
            with self._begin() as conn:
                conn.execute(delete(day_tallies).where(day_tallies.c.day.in_(days)))
                conn.execute(delete(tallied_days).where(tallied_days.c.day.in_(days)))
                if rows:
                    conn.execute(
                        day_tallies.insert(),
                        [
                            {
                                "day": r.day,
                                "class_name": r.class_name,
                                "student": r.student,
                                "present": r.present,
                                "late": r.late,
                                "excused": r.excused,
                                "absent": r.absent,
                            }
                            for r in rows
                        ],
                    )
                conn.execute(
                    tallied_days.insert(),
                    [
                        {
                            "day": d,
                            "generation": generation,
                            "marks_seen": seen[0],
                            "corrections_seen": seen[1],
                        }
                        for d in days
                    ],
                )
        except IntegrityError:  # kept by another server in the meantime
            pass

    def tally_sums(
        self,
        first: date,
        last: date,
        classes: Sequence[str] | None = None,
        student: str | None = None,
        by_day: bool = False,
    ) -> list[Tally]:
        """The kept counts of the range summed per student (or per day, with ``by_day``:
        every student together), of some classes or all, by the database."""
        t = day_tallies.c
        key = [t.day] if by_day else [t.student]
        query = select(
            *key,
            func.sum(t.present),
            func.sum(t.late),
            func.sum(t.excused),
            func.sum(t.absent),
        ).where(t.day.between(first, last))
        if classes is not None:
            query = query.where(t.class_name.in_(list(classes)))
        if student is not None:
            query = query.where(t.student == student)
        with self._begin() as conn:
            rows = conn.execute(query.group_by(*key)).all()
        out = []
        for row in rows:
            counts = [int(v or 0) for v in row[1:]]
            if by_day:
                out.append(Tally(row[0], "", "", *counts))
            else:
                out.append(Tally(None, "", row[0], *counts))
        return out
