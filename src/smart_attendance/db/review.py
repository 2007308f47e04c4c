"""The queries of the review queue, mixed into ``Store``: intruder photos and uncertain faces
(a face the rule left unknown although a student was near), each waiting for a person's
decision. A decision is recorded with who took it and when; nothing is deleted silently."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, true, update
from sqlalchemy.engine import Connection

from .tables import intruders, uncertain

OPEN = "open"


@dataclass(frozen=True)
class IntruderRow:
    id: int
    day: date
    seen_at: datetime
    camera: str
    path: str
    state: str = OPEN  # open | identified | dismissed
    student: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class UncertainRow:
    id: int
    day: date
    seen_at: datetime
    camera: str
    candidate: str
    distance: float
    margin: float | None
    path: str
    state: str = OPEN  # open | confirmed | rejected
    decided_by: str | None = None
    decided_at: datetime | None = None


class ReviewQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    # --- intruder photos ----------------------------------------------------------------------

    def intruder_rows(self, first: date, last: date, state: str | None = None) -> list[IntruderRow]:
        query = select(intruders).where(intruders.c.day >= first, intruders.c.day <= last)
        if state is not None:
            query = query.where(intruders.c.state == state)
        with self._begin() as conn:
            rows = conn.execute(query.order_by(intruders.c.seen_at, intruders.c.id)).all()
        return [_intruder(r) for r in rows]

    def intruder_row(self, row_id: int) -> IntruderRow | None:
        with self._begin() as conn:
            row = conn.execute(select(intruders).where(intruders.c.id == row_id)).first()
        return _intruder(row) if row else None

    def decide_intruder(
        self, row_id: int, state: str, student: str | None, by: str | None, at: datetime | None
    ) -> bool:
        """Record a decision on an open intruder photo; False when it was no longer open (a
        reviewer on another server decided first). ``state=OPEN`` reopens a decided one."""
        with self._begin() as conn:
            result = conn.execute(
                update(intruders)
                .where(intruders.c.id == row_id)
                .where((intruders.c.state == OPEN) if state != OPEN else true())
                .values(state=state, student=student, decided_by=by, decided_at=at)
            )
            return bool(result.rowcount)

    def delete_intruder(self, row_id: int) -> None:
        with self._begin() as conn:
            conn.execute(delete(intruders).where(intruders.c.id == row_id))

    # --- uncertain faces ----------------------------------------------------------------------

    def record_uncertain(
        self,
        seen_at: datetime,
        camera: str,
        candidate: str,
        distance: float,
        margin: float | None,
        path: str,
    ) -> int:
        with self._begin() as conn:
            result = conn.execute(
                uncertain.insert().values(
                    day=seen_at.date(),
                    seen_at=seen_at,
                    camera=camera,
                    candidate=candidate,
                    distance=distance,
                    margin=margin,
                    path=path,
                    state=OPEN,
                )
            )
            key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def uncertain_rows(
        self, first: date, last: date, state: str | None = None
    ) -> list[UncertainRow]:
        query = select(uncertain).where(uncertain.c.day >= first, uncertain.c.day <= last)
        if state is not None:
            query = query.where(uncertain.c.state == state)
        with self._begin() as conn:
            rows = conn.execute(query.order_by(uncertain.c.seen_at, uncertain.c.id)).all()
        return [_uncertain(r) for r in rows]

    def uncertain_row(self, row_id: int) -> UncertainRow | None:
        with self._begin() as conn:
            row = conn.execute(select(uncertain).where(uncertain.c.id == row_id)).first()
        return _uncertain(row) if row else None

    def decide_uncertain(
        self, row_id: int, state: str, by: str | None, at: datetime | None
    ) -> bool:
        """Record a decision on an open uncertain face; False when it was no longer open.
        ``state=OPEN`` reopens a decided one."""
        with self._begin() as conn:
            result = conn.execute(
                update(uncertain)
                .where(uncertain.c.id == row_id)
                .where((uncertain.c.state == OPEN) if state != OPEN else true())
                .values(state=state, decided_by=by, decided_at=at)
            )
            return bool(result.rowcount)


def _intruder(row: Any) -> IntruderRow:
    return IntruderRow(
        row.id,
        row.day,
        row.seen_at,
        row.camera,
        row.path,
        row.state,
        row.student,
        row.decided_by,
        row.decided_at,
    )


def _uncertain(row: Any) -> UncertainRow:
    return UncertainRow(
        row.id,
        row.day,
        row.seen_at,
        row.camera,
        row.candidate,
        float(row.distance),
        None if row.margin is None else float(row.margin),
        row.path,
        row.state,
        row.decided_by,
        row.decided_at,
    )
