"""The attendance store: SQLAlchemy 2 Core tables and the queries the service needs.

One mark per student per local day is enforced by a unique constraint, so concurrent requests,
several threads or several server processes can race and still record exactly one. Database
failures surface as ``StoreError`` with a plain message; nothing is half-written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Engine,
    Integer,
    String,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..errors import StoreError
from ..models import STATUS_LATE, STATUS_PRESENT, Correction, Mark, MarkOutcome, Sealer
from .audit import AuditRow, insert_audit
from .badges import BadgeQueries
from .challenges import ChallengeQueries
from .keys import KeyQueries
from .notify import notify
from .privacy import PrivacyQueries
from .retention import RetentionQueries
from .review import ReviewQueries
from .schema import SchemaChange
from .schema import upgrade as upgrade_schema
from .streaks import StreakQueries
from .tables import (
    audit,
    badges,
    consent_events,
    corrections,
    day_tallies,
    face_cache,
    intruders,
    marks,
    meta,
    photos,
    report_attempts,
    report_runs,
    sightings,
    students,
    timetables,
    uncertain,
)
from .tallies import TallyQueries
from .users import UserQueries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoRow:
    path: str
    student: str
    size: int
    mtime_ns: int
    sha256: str
    kept: bool = True  # False: the file was deleted, the descriptor kept (descriptor-only)


@dataclass(frozen=True)
class StudentRow:
    """A student of the registry."""

    name: str
    display_name: str = ""
    external_id: str | None = None
    active: bool = True
    joined_on: date = date(1970, 1, 1)
    classes: tuple[str, ...] = ()  # classes beside those whose roster names them
    consent: str = "none"  # none | given | refused | withdrawn (changed by ConsentService only)
    # UTC, naive: when they were added (expected in the periods that start after it); None:
    # from the start of ``joined_on`` (a join date given by hand, or a row from before 0010)
    joined_at: datetime | None = None


@dataclass(frozen=True)
class TimetableRow:
    """A timetable as it came into force (``kind`` file: ``text`` is its TOML)."""

    effective_from: date
    digest: str
    kind: str
    source: str
    text: str
    default_late: int
    # UTC, naive: the moment it came into force; None: the start of ``effective_from``
    effective_at: datetime | None = None


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


_PASSWORD_IN_TEXT = re.compile(r"(password\s*=\s*)('[^']*'|\S+)|(://[^:/@\s]*:)[^@\s]*@", re.I)


def _redact(message: str, password: str | None = None) -> str:
    """``message`` without the database password: never in an answer or a log line."""
    if password:
        message = message.replace(password, "***")
    return _PASSWORD_IN_TEXT.sub(lambda m: f"{m[1]}***" if m[1] else f"{m[3]}***@", message)


def _describe(exc: BaseException, password: str | None = None) -> str:
    """The first line of a database error (the driver's own message), without the password."""
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).splitlines() or [type(exc).__name__]
    return _redact(lines[0], password)[:160]


BACKGROUND_CONNECTIONS = 4  # the schedulers, the gallery watcher, the enrolment at start
OVERFLOW_CONNECTIONS = 4  # beyond the pool, for a moment (closed when given back)
CONNECT_TIMEOUT_S = 5  # a database server that does not answer: 503 in seconds, not minutes
PING_TIMEOUT_S = 2  # GET /health's SELECT 1 (Store.ping)


def _connect_args(url: str, timeout_s: int) -> dict[str, Any]:
    """libpq's ``connect_timeout`` for a PostgreSQL URL that does not set its own."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return {}
    if not parsed.get_backend_name().startswith("postgresql"):
        return {}
    if "connect_timeout" in parsed.query:
        return {}
    return {"connect_args": {"connect_timeout": timeout_s}}


def pool_options(url: str, threads: int) -> dict[str, Any]:
    """``create_engine``'s pool for ``url``: on a database server, a connection kept for each
    of ``threads`` request threads and for the background threads, a few more for a moment.
    A server process opens at most ``threads + 8`` connections; SQLite needs no pool sizing.
    On PostgreSQL a new connection waits at most ``CONNECT_TIMEOUT_S`` (libpq's
    ``connect_timeout``, unless the URL sets one): a database that is down or unreachable
    answers ``StoreError`` (HTTP 503 ``database_unavailable``) within seconds."""
    if url.startswith("sqlite"):
        return {}
    return {
        "pool_size": max(threads, 1) + BACKGROUND_CONNECTIONS,
        "max_overflow": OVERFLOW_CONNECTIONS,
        **_connect_args(url, CONNECT_TIMEOUT_S),
    }


class Store(
    UserQueries,
    ReviewQueries,
    PrivacyQueries,
    BadgeQueries,
    RetentionQueries,
    KeyQueries,
    StreakQueries,
    ChallengeQueries,
    TallyQueries,
):
    """Queries over one database. Thread-safe (a connection per call from the engine's pool).
    ``sealer`` encrypts face descriptors at rest (``privacy.sealing``); a store without one
    refuses to write or read a descriptor. ``threads``: the request threads that share it
    (the pool's size on a database server, ``pool_options``)."""

    def __init__(self, url: str, sealer: Sealer | None = None, *, threads: int = 8) -> None:
        self.url = url
        self.sealer = sealer
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, pool_pre_ping=True, **pool_options(url, threads)
            )
        except OSError as exc:
            raise StoreError(
                f"cannot create the database folder: {exc.strerror} ({exc.filename})"
            ) from None
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StoreError(f"cannot open the database: {_describe(exc)}") from None
        self._password = self.engine.url.password
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self._ping_engine = self.engine
        else:  # a connection of its own for each check: never waits behind a busy pool
            self._ping_engine = create_engine(
                self.engine.url, poolclass=NullPool, **_connect_args(url, PING_TIMEOUT_S)
            )

    def create(self) -> SchemaChange:
        """Create the schema, or upgrade it to the head revision (``schema.upgrade``: Alembic's
        migrations, safe when several processes start at once); what was done."""
        change = upgrade_schema(self.engine)
        if change.action != "current":
            log.info("%s", change.describe())
        return change

    def close(self) -> None:
        self.engine.dispose()
        if self._ping_engine is not self.engine:
            self._ping_engine.dispose()

    def ping(self) -> None:
        """``SELECT 1``, or ``StoreError`` saying why the database cannot be reached. On a
        database server, on a new connection that waits at most ``PING_TIMEOUT_S`` (not one
        of the pool's, which may all be busy): ``GET /health`` (``app.DatabaseCheck``)."""
        try:
            with self._ping_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(f"database unreachable: {_describe(exc, self._password)}") from None

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc, self._password)}") from None

    # --- enrolment cache ----------------------------------------------------------------------

    def _sealer(self) -> Sealer:
        if self.sealer is None:
            raise StoreError("face descriptors are stored encrypted: this store has no data key")
        return self.sealer

    def photo_rows(self) -> dict[str, PhotoRow]:
        with self._begin() as conn:
            rows = conn.execute(select(photos)).all()
        return {
            row.path: PhotoRow(row.path, row.student, row.size, row.mtime_ns, row.sha256, row.kept)
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
                        np.frombuffer(self._sealer().open(row.descriptor), dtype=np.float32).copy()
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
                            self._sealer().seal(np.asarray(value.descriptor, np.float32).tobytes())
                            if value.descriptor is not None
                            else None
                        ),
                    }
                    for key, value in entries.items()
                ],
            )

    # --- marks --------------------------------------------------------------------------------

    def record_mark(self, mark: Mark, event_id: str | None = None) -> MarkOutcome:
        """Insert the mark unless the student already has one for that class period (or this
        student's mark of the same event was recorded before: event ids are unique per
        student, so one student's scan never stands for another's); race-safe across threads
        and processes."""
        values = {
            "student": mark.name,
            "day": mark.day,
            "class_name": mark.class_name,
            "period": mark.period,
            "period_end": mark.period_end,
            "late_after": mark.late_after,
            "seen_at": mark.seen_at,
            "status": mark.status,
            "camera": mark.camera,
            "source": mark.source,
            "key_name": mark.key_name,
            "event_id": event_id,
            "received_at": mark.received_at,
        }
        try:
            with self._begin() as conn:
                conn.execute(marks.insert().values(**values))
            return MarkOutcome(mark, True)
        except IntegrityError:
            pass
        existing = self.mark_for(mark.name, mark.day, mark.class_name, mark.period)
        if existing is None and event_id is not None:
            existing = self.mark_for_event(event_id, mark.name)
        if existing is None:  # pragma: no cover - a conflict always leaves a row behind
            raise StoreError("could not record the mark (conflicting write); please retry")
        return MarkOutcome(existing, False)

    def import_marks(self, rows: Sequence[Mark]) -> None:
        """Insert many marks in one transaction (``attendance demo``: a school's history);
        the unique constraints hold as for one mark: a duplicate fails the whole batch."""
        if not rows:
            return
        with self._begin() as conn:
            conn.execute(
                marks.insert(),
                [
                    {
                        "student": m.name,
                        "day": m.day,
                        "class_name": m.class_name,
                        "period": m.period,
                        "period_end": m.period_end,
                        "late_after": m.late_after,
                        "seen_at": m.seen_at,
                        "status": m.status,
                        "camera": m.camera,
                        "source": m.source,
                        "key_name": m.key_name,
                        "event_id": None,
                        "received_at": m.received_at,
                    }
                    for m in rows
                ],
            )

    @staticmethod
    def _mark(row: Any) -> Mark:
        return Mark(
            row.student,
            row.day,
            row.seen_at,
            row.status,
            row.camera,
            row.class_name,
            row.period,
            row.period_end,
            row.late_after,
            row.source,
            key_name=row.key_name,
            received_at=row.received_at,
        )

    def mark_for(
        self, student: str, day: date, class_name: str = "default", period: str = "00:00"
    ) -> Mark | None:
        with self._begin() as conn:
            row = conn.execute(
                select(marks).where(
                    marks.c.student == student,
                    marks.c.day == day,
                    marks.c.class_name == class_name,
                    marks.c.period == period,
                )
            ).first()
        return self._mark(row) if row else None

    def mark_for_event(self, event_id: str, student: str) -> Mark | None:
        """The mark of ``student`` recorded with ``event_id`` (unique per student)."""
        with self._begin() as conn:
            row = conn.execute(
                select(marks).where(marks.c.event_id == event_id, marks.c.student == student)
            ).first()
        return self._mark(row) if row else None

    def marks_on(self, day: date) -> list[Mark]:
        return self.marks_between(day, day)

    def marks_between(
        self, first: date, last: date, class_name: str | None = None, student: str | None = None
    ) -> list[Mark]:
        query = select(marks).where(marks.c.day >= first, marks.c.day <= last)
        if class_name is not None:
            query = query.where(marks.c.class_name == class_name)
        if student is not None:
            query = query.where(marks.c.student == student)
        with self._begin() as conn:
            rows = conn.execute(query.order_by(marks.c.seen_at, marks.c.id)).all()
        return [self._mark(row) for row in rows]

    def first_day(self) -> date | None:
        """The first day with a mark or a correction (None on an empty register)."""
        with self._begin() as conn:
            first_mark = conn.execute(select(func.min(marks.c.day))).scalar_one_or_none()
            first_fix = conn.execute(select(func.min(corrections.c.day))).scalar_one_or_none()
        days = [d for d in (first_mark, first_fix) if isinstance(d, date)]
        return min(days) if days else None

    def change_ids(self) -> tuple[int, int]:
        """The highest mark id and correction id (0 when none): how far the register grew."""
        with self._begin() as conn:
            last_mark = conn.execute(select(func.max(marks.c.id))).scalar_one_or_none()
            last_fix = conn.execute(select(func.max(corrections.c.id))).scalar_one_or_none()
        return int(last_mark or 0), int(last_fix or 0)

    def change_stamps(self, mark_id: int, correction_id: int) -> tuple[str, str]:
        """When the mark ``mark_id`` was seen and the correction ``correction_id`` made (ISO
        8601; "" when there is no such row): with ``change_ids``, tells a row deleted and its
        id used again (SQLite reuses the highest id) from the row that was there."""
        with self._begin() as conn:
            seen = conn.execute(select(marks.c.seen_at).where(marks.c.id == mark_id)).scalar()
            at = conn.execute(
                select(corrections.c.at).where(corrections.c.id == correction_id)
            ).scalar()
        return (
            seen.isoformat() if isinstance(seen, datetime) else "",
            at.isoformat() if isinstance(at, datetime) else "",
        )

    def days_changed(self, after_mark: int = 0, after_correction: int = 0) -> set[date]:
        """The days with a mark whose id is above ``after_mark`` or a correction whose id is
        above ``after_correction`` (every day on record by default)."""
        with self._begin() as conn:
            found = conn.execute(
                select(marks.c.day).where(marks.c.id > after_mark).distinct()
            ).scalars()
            days = set(found)
            fixes = conn.execute(
                select(corrections.c.day).where(corrections.c.id > after_correction).distinct()
            ).scalars()
            days.update(fixes)
        return {d for d in days if isinstance(d, date)}

    # --- corrections --------------------------------------------------------------------------

    def record_correction(self, correction: Correction, audit_row: AuditRow | None = None) -> None:
        self.record_corrections([correction], audit_row)

    def record_corrections(
        self, rows: Sequence[Correction], audit_row: AuditRow | None = None
    ) -> None:
        """Record every correction of ``rows`` in one transaction (all or none), with the
        audit entry that records them (``audit_row``), if any."""
        if not rows:
            return
        with self._begin() as conn:
            if audit_row is not None:
                insert_audit(conn, audit_row)
            conn.execute(
                corrections.insert(),
                [
                    {
                        "student": c.name,
                        "day": c.day,
                        "class_name": c.class_name,
                        "period": c.period,
                        "old_status": c.old_status,
                        "new_status": c.new_status,
                        "reason": c.reason[:512],
                        "by": c.by[:128],
                        "at": c.at,
                    }
                    for c in rows
                ],
            )

    def corrections_between(
        self, first: date, last: date, class_name: str | None = None, student: str | None = None
    ) -> list[Correction]:
        """Every correction in the range, oldest first (the last one of a slot is current)."""
        query = select(corrections).where(corrections.c.day >= first, corrections.c.day <= last)
        if class_name is not None:
            query = query.where(corrections.c.class_name == class_name)
        if student is not None:
            query = query.where(corrections.c.student == student)
        with self._begin() as conn:
            rows = conn.execute(query.order_by(corrections.c.id)).all()
        return [
            Correction(
                r.student,
                r.day,
                r.class_name,
                r.period,
                r.old_status,
                r.new_status,
                r.reason,
                r.by,
                r.at,
            )
            for r in rows
        ]

    # --- sightings ----------------------------------------------------------------------------

    def record_sighting(self, student: str, seen_at: datetime, camera: str) -> None:
        with self._begin() as conn:
            conn.execute(
                sightings.insert().values(
                    student=student, day=seen_at.date(), seen_at=seen_at, camera=camera
                )
            )

    def sightings_on(self, day: date) -> list[tuple[str, datetime, str]]:
        with self._begin() as conn:
            rows = conn.execute(
                select(sightings).where(sightings.c.day == day).order_by(sightings.c.id)
            ).all()
        return [(r.student, r.seen_at, r.camera) for r in rows]

    # --- students -----------------------------------------------------------------------------

    def students(self) -> list[StudentRow]:
        with self._begin() as conn:
            rows = conn.execute(select(students).order_by(students.c.name)).all()
        return [self._student(r) for r in rows]

    def student(self, name: str) -> StudentRow | None:
        with self._begin() as conn:
            row = conn.execute(select(students).where(students.c.name == name)).first()
        return self._student(row) if row else None

    @staticmethod
    def _student(row: Any) -> StudentRow:
        classes = tuple(c for c in (row.classes or "").split(",") if c)
        return StudentRow(
            row.name,
            row.display_name or "",
            row.external_id,
            bool(row.active),
            row.joined_on,
            classes,
            row.consent,
            row.joined_at,
        )

    def ensure_students(
        self, names: Iterable[str], joined_on: date, joined_at: datetime | None = None
    ) -> list[str]:
        """Add the students not in the registry yet (joined ``joined_on``, at ``joined_at``
        UTC); the names added."""
        wanted = sorted(set(names))
        with self._begin() as conn:
            known = {r[0] for r in conn.execute(select(students.c.name)).all()}
        added = []
        for name in (n for n in wanted if n not in known):
            row = StudentRow(name, joined_on=joined_on, joined_at=joined_at)
            if self.add_student(row):
                added.append(name)
        return added

    def add_student(self, row: StudentRow) -> bool:
        """Insert a student; False if the name is taken."""
        try:
            with self._begin() as conn:
                conn.execute(
                    students.insert().values(
                        name=row.name,
                        display_name=row.display_name,
                        external_id=row.external_id,
                        active=row.active,
                        joined_on=row.joined_on,
                        joined_at=row.joined_at,
                        classes=",".join(row.classes),
                    )
                )
        except IntegrityError:
            return False
        if row.joined_at is None:  # a join day by hand: days already tallied may change
            self.forget_tallies()
        return True

    def add_students(self, rows: Sequence[StudentRow]) -> None:
        """Insert many new students in one transaction (``attendance demo``)."""
        if not rows:
            return
        with self._begin() as conn:
            conn.execute(
                students.insert(),
                [
                    {
                        "name": r.name,
                        "display_name": r.display_name,
                        "external_id": r.external_id,
                        "active": r.active,
                        "joined_on": r.joined_on,
                        "joined_at": r.joined_at,
                        "classes": ",".join(r.classes),
                    }
                    for r in rows
                ],
            )
        self.forget_tallies()

    def update_student(self, name: str, row: StudentRow) -> None:
        """Store ``row`` for the student ``name``; a new name is carried into their marks,
        corrections, sightings, photos and review items in the same transaction (history is
        kept)."""
        before = self.student(name)
        with self._begin() as conn:
            conn.execute(
                update(students)
                .where(students.c.name == name)
                .values(
                    name=row.name,
                    display_name=row.display_name,
                    external_id=row.external_id,
                    active=row.active,
                    classes=",".join(row.classes),
                    joined_on=row.joined_on,
                    joined_at=row.joined_at,
                )
            )
            if row.name != name:
                for table in (
                    marks,
                    corrections,
                    sightings,
                    photos,
                    intruders,
                    consent_events,
                    badges,
                    day_tallies,
                ):
                    conn.execute(
                        update(table).where(table.c.student == name).values(student=row.name)
                    )
                conn.execute(update(audit).where(audit.c.subject == name).values(subject=row.name))
                conn.execute(
                    update(uncertain)
                    .where(uncertain.c.candidate == name)
                    .values(candidate=row.name)
                )
        if before is not None and (
            before.classes,
            before.active,
            before.joined_on,
            before.joined_at,
        ) != (row.classes, row.active, row.joined_on, row.joined_at):
            self.forget_tallies()  # where they are expected, on days already tallied

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

    def sends_since(self, kind: str, since: datetime) -> list[datetime]:
        """When each send of ``kind`` after ``since`` (UTC) started, oldest first: the
        messages of one send share its time, so each send counts once. Attempts that never
        reached the mail server (outcome ``unsent``) are not sends."""
        with self._begin() as conn:
            rows = conn.execute(
                select(report_attempts.c.at)
                .where(
                    report_attempts.c.kind == kind,
                    report_attempts.c.at > since,
                    report_attempts.c.outcome != "unsent",
                )
                .distinct()
                .order_by(report_attempts.c.at)
            ).all()
        return [row.at for row in rows]

    # --- shared values (meta) ------------------------------------------------------------------

    def meta_value(self, key: str) -> str | None:
        with self._begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._begin() as conn:
            done = conn.execute(update(meta).where(meta.c.key == key).values(value=value))
            if done.rowcount == 0:
                conn.execute(meta.insert().values(key=key, value=value))

    def meta_number(self, key: str) -> int:
        """A counter of the ``meta`` table (0 when it was never set)."""
        raw = self.meta_value(key)
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            return 0

    def bump_meta(self, key: str) -> int:
        """Add one to a counter, atomically across processes; returns the new value. On
        PostgreSQL the same transaction notifies every server's ``ChangeListener``."""
        for _attempt in range(3):
            try:
                with self._begin() as conn:
                    done = conn.execute(
                        update(meta)
                        .where(meta.c.key == key)
                        .values(value=(meta.c.value.cast(Integer) + 1).cast(String))
                    )
                    if done.rowcount == 0:
                        conn.execute(meta.insert().values(key=key, value="1"))
                    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
                    notify(conn, key)  # PostgreSQL: every server hears it at the commit
                return int(str(value))
            except IntegrityError:  # another process inserted the key first: update it
                continue
        raise StoreError(f"could not update {key} (conflicting writes); please retry")

    # --- timetables in force ------------------------------------------------------------------

    def timetable_history(self) -> list[TimetableRow]:
        """Every timetable recorded, oldest first."""
        with self._begin() as conn:
            rows = conn.execute(
                select(timetables).order_by(timetables.c.effective_from, timetables.c.id)
            ).all()
        return [
            TimetableRow(
                r.effective_from,
                r.digest,
                r.kind,
                r.source,
                r.text,
                r.default_late,
                r.effective_at,
            )
            for r in rows
        ]

    def record_timetable(self, row: TimetableRow) -> bool:
        """Record ``row`` unless it is already the latest timetable; True if recorded."""
        history = self.timetable_history()
        if history and history[-1].digest == row.digest:
            return False
        self.forget_tallies()
        with self._begin() as conn:
            conn.execute(
                timetables.insert().values(
                    effective_from=row.effective_from,
                    digest=row.digest,
                    kind=row.kind,
                    source=row.source[:1024],
                    text=row.text,
                    default_late=row.default_late,
                    effective_at=row.effective_at,
                )
            )
        return True
