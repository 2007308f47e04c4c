"""The queries of consent, the audit log and erasure, mixed into ``Store``."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from .audit import AuditRow, insert_audit
from .tables import (
    audit,
    badges,
    consent_events,
    corrections,
    day_tallies,
    face_cache,
    intruders,
    marks,
    pending_erasures,
    photos,
    sightings,
    students,
    timetables,
    uncertain,
)


@dataclass(frozen=True)
class ConsentEvent:
    student: str
    state: str  # given | refused | withdrawn
    by: str  # who gave, refused or withdrew it (a person, as recorded)
    document: str  # the signed form's reference
    recorded_by: str  # user:NAME | cli:USER | api
    at: datetime  # UTC


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime  # UTC
    actor: str
    action: str
    subject: str
    detail: str


@dataclass
class Erased:
    """What an erasure removed from the database, and the files the rows pointed to."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted or rewritten
    files: list[str] = field(default_factory=list)  # intruder photos and review crops
    pending_id: int = 0  # its row of ``pending_erasures``, until the erasure is complete


@dataclass(frozen=True)
class PendingErasure:
    """An erasure whose database step is done, not the rest (``pending_erasures``)."""

    id: int
    opaque_id: str
    name_sealed: bytes
    files: tuple[str, ...]
    summary: str  # what the database step removed
    stage: str  # files: the files, the audit entry and the compaction remain; compact: the last


# The tables an erasure deletes from or rewrites: PostgreSQL rewrites them (VACUUM FULL).
ERASED_TABLES = (
    "students",
    "marks",
    "corrections",
    "sightings",
    "consent_events",
    "badges",
    "photos",
    "face_cache",
    "intruders",
    "uncertain",
    "audit",
    "timetables",
    "pending_erasures",
)
CHECKPOINT_TRIES = 10  # SQLite: a checkpoint that readers keep busy is tried this many times
SQLITE_BUSY_MS = 15000  # the store's busy timeout (db/store.py), put back after compacting


class PrivacyQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    # --- consent ------------------------------------------------------------------------------

    def consent_states(self) -> dict[str, str]:
        with self._begin() as conn:
            rows = conn.execute(select(students.c.name, students.c.consent)).all()
        return {row.name: row.consent for row in rows}

    def record_consent(self, event: ConsentEvent) -> bool:
        """Set the student's consent and keep the event, in one transaction; False when there
        is no such student."""
        with self._begin() as conn:
            done = conn.execute(
                update(students).where(students.c.name == event.student).values(consent=event.state)
            )
            if not done.rowcount:
                return False
            conn.execute(consent_events.insert().values(**event.__dict__))
        return True

    def consent_history(self, student: str) -> list[ConsentEvent]:
        with self._begin() as conn:
            rows = conn.execute(
                select(consent_events)
                .where(consent_events.c.student == student)
                .order_by(consent_events.c.id)
            ).all()
        return [
            ConsentEvent(r.student, r.state, r.by, r.document, r.recorded_by, r.at) for r in rows
        ]

    # --- photos and descriptors ---------------------------------------------------------------

    def forget_photos(self, student: str) -> int:
        """Forget the student's photos and their descriptors (those no other photo row shares);
        the number of photo rows forgotten."""
        with self._begin() as conn:
            digests = {
                r[0]
                for r in conn.execute(select(photos.c.sha256).where(photos.c.student == student))
            }
            done = conn.execute(delete(photos).where(photos.c.student == student))
            _drop_unshared(conn, digests)
        return int(done.rowcount or 0)

    def forget_faces(self, digests: set[str]) -> None:
        """Drop the cached faces (descriptors) of ``digests`` that no photo row uses."""
        with self._begin() as conn:
            _drop_unshared(conn, digests)

    def prune_face_cache(self) -> int:
        """Drop every cached face no photo row uses (photos refused at upload, removed, of
        students who withdrew); how many."""
        with self._begin() as conn:
            used = select(photos.c.sha256)
            done = conn.execute(delete(face_cache).where(face_cache.c.sha256.not_in(used)))
        return int(done.rowcount or 0)

    def descriptor_blobs(self) -> list[tuple[str, str, bytes]]:
        """Every stored descriptor as it is at rest: (sha256, pipeline, sealed bytes)."""
        with self._begin() as conn:
            rows = conn.execute(
                select(face_cache.c.sha256, face_cache.c.pipeline, face_cache.c.descriptor).where(
                    face_cache.c.descriptor.is_not(None)
                )
            ).all()
        return [(r.sha256, r.pipeline, r.descriptor) for r in rows]

    def replace_descriptor_blob(self, sha256: str, pipeline: str, blob: bytes) -> None:
        with self._begin() as conn:
            conn.execute(
                update(face_cache)
                .where(face_cache.c.sha256 == sha256, face_cache.c.pipeline == pipeline)
                .values(descriptor=blob)
            )

    # --- the audit log ------------------------------------------------------------------------

    def record_audit(
        self, at: datetime, actor: str, action: str, subject: str, detail: str
    ) -> None:
        with self._begin() as conn:
            insert_audit(conn, AuditRow(at, actor, action, subject, detail))

    def audit_entries(
        self, limit: int = 200, subject: str | None = None, since: datetime | None = None
    ) -> list[AuditEntry]:
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(audit.c.subject == subject)
        if since is not None:
            query = query.where(audit.c.at >= since)
        with self._begin() as conn:
            rows = conn.execute(query).all()
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.subject, r.detail) for r in rows]

    # --- subject access -----------------------------------------------------------------------

    def student_records(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Every row held on ``name``, per table (badge tokens' hashes left out, and the
        uncertain faces that staff rejected as not this student: someone else's face)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self._begin() as conn:
            for table, column in (
                (students, students.c.name),
                (consent_events, consent_events.c.student),
                (marks, marks.c.student),
                (corrections, corrections.c.student),
                (sightings, sightings.c.student),
                (photos, photos.c.student),
                (badges, badges.c.student),
                (intruders, intruders.c.student),
                (uncertain, uncertain.c.candidate),
                (audit, audit.c.subject),
            ):
                query = select(table).where(column == name)
                if table is uncertain:
                    query = query.where(uncertain.c.state != "rejected")
                rows = conn.execute(query.order_by(*table.primary_key)).all()
                out[table.name] = [
                    {k: v for k, v in row._mapping.items() if k != "token_sha256"} for row in rows
                ]
        return out

    # --- erasure ------------------------------------------------------------------------------

    def erase_student(
        self, name: str, opaque: str, name_sealed: bytes, at: datetime, summary: str = ""
    ) -> Erased:
        """Delete every row that names ``name`` (registry, marks, corrections, sightings,
        consent, badges, photos and their descriptors, intruder photos identified as them,
        uncertain faces that named them) and rewrite the audit log's and the timetable
        history's mentions as ``opaque``, in one transaction, which also records the erasure
        as pending (``name_sealed``: the name sealed with the data key) until it is complete."""
        out = Erased()
        with self._begin() as conn:
            digests = {
                r[0] for r in conn.execute(select(photos.c.sha256).where(photos.c.student == name))
            }
            out.files += [
                r[0]
                for r in conn.execute(select(intruders.c.path).where(intruders.c.student == name))
            ]
            out.files += [
                r[0]
                for r in conn.execute(select(uncertain.c.path).where(uncertain.c.candidate == name))
            ]
            for table, column in (
                (students, students.c.name),
                (marks, marks.c.student),
                (corrections, corrections.c.student),
                (sightings, sightings.c.student),
                (consent_events, consent_events.c.student),
                (badges, badges.c.student),
                (photos, photos.c.student),
                (intruders, intruders.c.student),
                (uncertain, uncertain.c.candidate),
                (day_tallies, day_tallies.c.student),
            ):
                done = conn.execute(delete(table).where(column == name))
                out.rows[table.name] = int(done.rowcount or 0)
            _drop_unshared(conn, digests)
            done = conn.execute(update(audit).where(audit.c.subject == name).values(subject=opaque))
            out.rows["audit"] = int(done.rowcount or 0)
            rewritten = 0
            for quote in ('"', "'"):
                done = conn.execute(
                    update(timetables)
                    .where(timetables.c.text.contains(f"{quote}{name}{quote}"))
                    .values(
                        text=func.replace(
                            timetables.c.text, f"{quote}{name}{quote}", f"{quote}{opaque}{quote}"
                        )
                    )
                )
                rewritten += int(done.rowcount or 0)
            out.rows["timetables"] = rewritten
            done = conn.execute(
                pending_erasures.insert().values(
                    opaque_id=opaque,
                    name_sealed=name_sealed,
                    files="\n".join(f for f in out.files if f),
                    summary=summary[:255],
                    stage="files",
                    started_at=at,
                )
            )
            key = done.inserted_primary_key
            assert key is not None
            out.pending_id = int(key[0])
        return out

    def pending_erasures(self) -> list[PendingErasure]:
        with self._begin() as conn:
            rows = conn.execute(select(pending_erasures).order_by(pending_erasures.c.id)).all()
        return [
            PendingErasure(
                r.id,
                r.opaque_id,
                bytes(r.name_sealed),
                tuple(f for f in r.files.split("\n") if f),
                r.summary,
                r.stage,
            )
            for r in rows
        ]

    def record_erasure(
        self, pending_id: int, at: datetime, actor: str, subject: str, detail: str
    ) -> bool:
        """The erasure's audit entry, written in one transaction with its step to ``compact``;
        False (and nothing written) when it was recorded before."""
        with self._begin() as conn:
            moved = conn.execute(
                update(pending_erasures)
                .where(pending_erasures.c.id == pending_id, pending_erasures.c.stage == "files")
                .values(stage="compact")
            )
            if not moved.rowcount:
                return False
            insert_audit(conn, AuditRow(at, actor, "erase", subject, detail))
        return True

    def erasure_done(self, pending_id: int) -> None:
        with self._begin() as conn:
            conn.execute(delete(pending_erasures).where(pending_erasures.c.id == pending_id))

    def compact(self, full: bool = False) -> None:
        """Give deleted rows' bytes back, so they are gone from the files, or ``StoreError``.

        SQLite: the write-ahead log checkpointed into the file and truncated, the file rewritten
        (``VACUUM``), the log checkpointed and truncated again; a checkpoint that other
        connections' reads keep from completing is tried again, then refused. PostgreSQL: a plain
        ``VACUUM`` (``full`` False: the daily purge) only marks the space reusable, the old row
        versions stay in the table's files until overwritten; with ``full`` (an erasure),
        ``VACUUM FULL`` of each table an erasure touches (``ERASED_TABLES``) writes new files
        without them (each table is locked while it is rewritten)."""
        engine: Any = getattr(self, "engine")  # noqa: B009 - provided by Store
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                if engine.dialect.name == "sqlite":
                    conn.execute(text("PRAGMA busy_timeout=200"))  # the tries below wait
                    try:
                        _checkpoint(conn)
                        conn.execute(text("VACUUM"))
                        _checkpoint(conn)
                    finally:
                        conn.execute(text(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}"))
                elif full:
                    for table in ERASED_TABLES:
                        conn.execute(text(f"VACUUM FULL {table}"))
                else:
                    conn.execute(text("VACUUM"))
        except StoreError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(
                f"the database could not be compacted ({type(exc).__name__}): retry to finish"
            ) from None


def _checkpoint(conn: Connection) -> None:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` until it completes (its first column, ``busy``, is
    0), or ``StoreError``: the log would keep deleted rows' bytes."""
    for attempt in range(CHECKPOINT_TRIES):
        busy, _log, _done = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        if not busy:
            return
        time.sleep(0.05 * (attempt + 1))
    raise StoreError(
        "the database's write-ahead log could not be emptied (other connections were reading "
        "it): retry to finish"
    )


def _drop_unshared(conn: Connection, digests: set[str]) -> None:
    if not digests:
        return
    still = {
        r[0]
        for r in conn.execute(select(photos.c.sha256).where(photos.c.sha256.in_(list(digests))))
    }
    gone = list(digests - still)
    for start in range(0, len(gone), 500):
        conn.execute(delete(face_cache).where(face_cache.c.sha256.in_(gone[start : start + 500])))
