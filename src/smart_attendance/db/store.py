"""The attendance store: SQLAlchemy 2 Core tables and the queries the service needs.

One mark per student per local day is enforced by a unique constraint, so concurrent requests,
several threads or several server processes can race and still record exactly one. Database
failures surface as ``StoreError`` with a plain message; nothing is half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..errors import StoreError
from ..models import STATUS_LATE, STATUS_PRESENT, Mark, MarkOutcome, StudentStats

log = logging.getLogger(__name__)

metadata = MetaData()

photos = Table(
    "photos",
    metadata,
    Column("path", String(1024), primary_key=True),  # relative to the dataset folder
    Column("student", String(255), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
)

face_cache = Table(
    "face_cache",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("pipeline", String(64), primary_key=True),
    Column("status", String(32), nullable=False),  # ok | no_face | many_faces | too_small | ...
    Column("detail", String(255), nullable=False, default=""),
    Column("descriptor", LargeBinary, nullable=True),  # 128 float32, only when status == ok
)

marks = Table(
    "marks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False),
    Column("day", Date, nullable=False),
    Column("seen_at", DateTime, nullable=False),  # local wall time in the configured zone
    Column("status", String(16), nullable=False),
    Column("camera", String(64), nullable=False, default=""),
    Column("event_id", String(128), nullable=True, unique=True),
    UniqueConstraint("student", "day", name="uq_marks_student_day"),
)

intruders = Table(
    "intruders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False, index=True),
    Column("seen_at", DateTime, nullable=False),
    Column("camera", String(64), nullable=False),
    Column("path", String(1024), nullable=False),
)


report_runs = Table(
    "report_runs",  # the scheduled report of each day: claimed by exactly one process
    metadata,
    Column("day", Date, primary_key=True),
    Column("status", String(16), nullable=False),  # sending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),  # UTC
    Column("lease_until", DateTime, nullable=False),  # UTC
    Column("owner", String(64), nullable=False),
)

report_attempts = Table(
    "report_attempts",  # every send, scheduled or manual, with its outcome
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False),
    Column("kind", String(16), nullable=False),  # scheduled | manual
    Column("at", DateTime, nullable=False),  # UTC
    Column("outcome", String(16), nullable=False),  # sent | failed
    Column("recipients", String(1024), nullable=False),
    Column("error", String(512), nullable=False, default=""),
)


@dataclass(frozen=True)
class PhotoRow:
    path: str
    student: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class CachedFace:
    status: str
    detail: str
    descriptor: np.ndarray | None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _describe(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).splitlines()[0]
    return text[:160]


class Store:
    """Queries over one database. Thread-safe (a connection per call from the engine's pool)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the database folder: {exc.strerror} ({exc.filename})"
            ) from None
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StoreError(f"cannot open the database: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create(self) -> None:
        with self._begin() as conn:
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from None

    # --- enrolment cache ----------------------------------------------------------------------

    def photo_rows(self) -> dict[str, PhotoRow]:
        with self._begin() as conn:
            rows = conn.execute(select(photos)).all()
        return {
            row.path: PhotoRow(row.path, row.student, row.size, row.mtime_ns, row.sha256)
            for row in rows
        }

    def sync_photos(self, current: Sequence[PhotoRow], removed: Iterable[str]) -> None:
        """Upsert the current dataset listing and forget removed paths, in one transaction."""
        removed = list(removed)
        with self._begin() as conn:
            if removed:
                for start in range(0, len(removed), 500):
                    conn.execute(
                        delete(photos).where(photos.c.path.in_(removed[start : start + 500]))
                    )
            paths = [row.path for row in current]
            for start in range(0, len(paths), 500):
                conn.execute(delete(photos).where(photos.c.path.in_(paths[start : start + 500])))
            if current:
                conn.execute(photos.insert(), [row.__dict__ for row in current])

    def cached_faces(self, pipeline: str, hashes: Iterable[str]) -> dict[str, CachedFace]:
        wanted = list(set(hashes))
        found: dict[str, CachedFace] = {}
        with self._begin() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(face_cache).where(
                    face_cache.c.pipeline == pipeline, face_cache.c.sha256.in_(chunk)
                )
                for row in conn.execute(query):
                    vector = (
                        np.frombuffer(row.descriptor, dtype=np.float32).copy()
                        if row.descriptor is not None
                        else None
                    )
                    found[row.sha256] = CachedFace(row.status, row.detail, vector)
        return found

    def cache_faces(self, pipeline: str, entries: dict[str, CachedFace]) -> None:
        if not entries:
            return
        with self._begin() as conn:
            keys = list(entries)
            for start in range(0, len(keys), 500):
                conn.execute(
                    delete(face_cache).where(
                        face_cache.c.pipeline == pipeline,
                        face_cache.c.sha256.in_(keys[start : start + 500]),
                    )
                )
            conn.execute(
                face_cache.insert(),
                [
                    {
                        "sha256": key,
                        "pipeline": pipeline,
                        "status": value.status,
                        "detail": value.detail[:255],
                        "descriptor": (
                            np.asarray(value.descriptor, np.float32).tobytes()
                            if value.descriptor is not None
                            else None
                        ),
                    }
                    for key, value in entries.items()
                ],
            )

    # --- marks --------------------------------------------------------------------------------

    def record_mark(self, mark: Mark, event_id: str | None = None) -> MarkOutcome:
        """Insert the day's mark unless the student already has one; race-safe."""
        values = {
            "student": mark.name,
            "day": mark.day,
            "seen_at": mark.seen_at,
            "status": mark.status,
            "camera": mark.camera,
            "event_id": event_id,
        }
        try:
            with self._begin() as conn:
                conn.execute(marks.insert().values(**values))
            return MarkOutcome(mark, True)
        except IntegrityError:
            pass
        existing = self.mark_for(mark.name, mark.day)
        if existing is None and event_id is not None:
            existing = self.mark_for_event(event_id)
        if existing is None:  # pragma: no cover - a conflict always leaves a row behind
            raise StoreError("could not record the mark (conflicting write); please retry")
        return MarkOutcome(existing, False)

    @staticmethod
    def _mark(row: Any) -> Mark:
        return Mark(row.student, row.day, row.seen_at, row.status, row.camera)

    def mark_for(self, student: str, day: date) -> Mark | None:
        with self._begin() as conn:
            row = conn.execute(
                select(marks).where(marks.c.student == student, marks.c.day == day)
            ).first()
        return self._mark(row) if row else None

    def mark_for_event(self, event_id: str) -> Mark | None:
        with self._begin() as conn:
            row = conn.execute(select(marks).where(marks.c.event_id == event_id)).first()
        return self._mark(row) if row else None

    def marks_on(self, day: date) -> list[Mark]:
        with self._begin() as conn:
            rows = conn.execute(
                select(marks).where(marks.c.day == day).order_by(marks.c.seen_at, marks.c.id)
            ).all()
        return [self._mark(row) for row in rows]

    def statistics(self, enrolled: Iterable[str] = ()) -> list[StudentStats]:
        """Per-student counts over every day that has at least one mark."""
        present = func.sum((marks.c.status == STATUS_PRESENT).cast(Integer))
        late = func.sum((marks.c.status == STATUS_LATE).cast(Integer))
        with self._begin() as conn:
            total_days = conn.execute(select(func.count(marks.c.day.distinct()))).scalar_one()
            rows = conn.execute(
                select(marks.c.student, func.count(), present, late).group_by(marks.c.student)
            ).all()
        counts = {row[0]: (int(row[1]), int(row[2] or 0), int(row[3] or 0)) for row in rows}
        names = sorted(set(counts) | set(enrolled), key=lambda n: (n.casefold(), n))
        return [
            StudentStats(name, *counts.get(name, (0, 0, 0)), total_days=int(total_days))
            for name in names
        ]

    # --- intruders ----------------------------------------------------------------------------

    def record_intruder(self, day: date, seen_at: datetime, camera: str, path: str) -> None:
        with self._begin() as conn:
            conn.execute(
                intruders.insert().values(day=day, seen_at=seen_at, camera=camera, path=path)
            )

    def intruders_on(self, day: date) -> list[dict[str, Any]]:
        with self._begin() as conn:
            rows = conn.execute(
                select(intruders).where(intruders.c.day == day).order_by(intruders.c.seen_at)
            ).all()
        return [{"seen_at": r.seen_at, "camera": r.camera, "path": r.path} for r in rows]

    def daily_counts(self, first: date, last: date) -> list[tuple[date, int, int]]:
        """(day, on time, late) for every day with marks between ``first`` and ``last``."""
        present = func.sum((marks.c.status == STATUS_PRESENT).cast(Integer))
        late = func.sum((marks.c.status == STATUS_LATE).cast(Integer))
        with self._begin() as conn:
            rows = conn.execute(
                select(marks.c.day, present, late)
                .where(marks.c.day >= first, marks.c.day <= last)
                .group_by(marks.c.day)
                .order_by(marks.c.day)
            ).all()
        return [(row[0], int(row[1] or 0), int(row[2] or 0)) for row in rows]

    # --- reports ------------------------------------------------------------------------------

    def claim_report(self, day: date, now: datetime, lease: timedelta, owner: str) -> bool:
        """Claim the day's scheduled report for this process; False if another has it, it
        was sent, or its next retry is not due yet. Atomic across processes."""
        try:
            with self._begin() as conn:
                conn.execute(
                    report_runs.insert().values(
                        day=day,
                        status="sending",
                        attempts=0,
                        next_attempt_at=now,
                        lease_until=now + lease,
                        owner=owner,
                    )
                )
            return True
        except IntegrityError:
            pass
        due = ((report_runs.c.status == "failed") & (report_runs.c.next_attempt_at <= now)) | (
            (report_runs.c.status == "sending") & (report_runs.c.lease_until < now)
        )
        with self._begin() as conn:
            result = conn.execute(
                update(report_runs)
                .where(report_runs.c.day == day, due)
                .values(status="sending", lease_until=now + lease, owner=owner)
            )
        return bool(result.rowcount == 1)

    def finish_report(
        self,
        day: date,
        sent: bool,
        now: datetime,
        retry_after: Callable[[int], timedelta] = lambda _attempts: timedelta(0),
    ) -> int:
        """Record the outcome of a claimed send (a failed one is due again after
        ``retry_after(attempts)``); returns the number of attempts so far."""
        with self._begin() as conn:
            row = conn.execute(
                select(report_runs.c.attempts).where(report_runs.c.day == day)
            ).first()
            attempts = (int(row[0]) if row else 0) + 1
            conn.execute(
                update(report_runs)
                .where(report_runs.c.day == day)
                .values(
                    status="sent" if sent else "failed",
                    attempts=attempts,
                    next_attempt_at=now + retry_after(attempts),
                    lease_until=now,
                )
            )
        return attempts

    def unsent_reports(self, before: date) -> set[date]:
        """Earlier days whose scheduled report failed or was abandoned mid-send."""
        with self._begin() as conn:
            rows = conn.execute(
                select(report_runs.c.day).where(
                    report_runs.c.day < before, report_runs.c.status != "sent"
                )
            ).all()
        return {row[0] for row in rows}

    def report_status(self, day: date) -> str | None:
        with self._begin() as conn:
            row = conn.execute(select(report_runs.c.status).where(report_runs.c.day == day)).first()
        return str(row[0]) if row else None

    def record_attempt(
        self,
        day: date,
        kind: str,
        at: datetime,
        outcome: str,
        recipients: Iterable[str],
        error: str = "",
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                report_attempts.insert().values(
                    day=day,
                    kind=kind,
                    at=at,
                    outcome=outcome,
                    recipients=", ".join(recipients)[:1024],
                    error=error[:512],
                )
            )

    def attempts(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._begin() as conn:
            rows = conn.execute(
                select(report_attempts).order_by(report_attempts.c.id.desc()).limit(limit)
            ).all()
        return [dict(row._mapping) for row in rows]
