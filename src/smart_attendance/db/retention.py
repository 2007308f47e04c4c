"""The queries of the retention purge and of once-a-day jobs, mixed into ``Store``.

Each ``purge_*`` query deletes the rows older than a cut-off (``dry_run``: only counts them),
in one transaction, and returns what the rows pointed to (photo files) so the caller deletes
the files after the rows. A once-a-day job (``job_runs``) is *claimed* by one process: an insert
under the primary key (job, day), or an atomic update of a failed claim whose retry is due or of
a running claim whose lease ran out.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Table, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .tables import (
    audit,
    corrections,
    day_tallies,
    face_cache,
    intruders,
    job_runs,
    marks,
    photos,
    sightings,
    tallied_days,
)
from .tables import uncertain as uncertain_table

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class Expired:
    """Rows older than a cut-off (deleted, or counted by a dry run) and their photo files."""

    rows: int = 0
    paths: list[str] = field(default_factory=list)


def _purge(conn: Connection, table: Table, where: ColumnElement[bool], dry_run: bool) -> int:
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
    return int(conn.execute(delete(table).where(where)).rowcount or 0)


class RetentionQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    # --- the purge ----------------------------------------------------------------------------

    def purge_intruders(self, before: date, dry_run: bool = False) -> Expired:
        """Intruder events of days before ``before`` (any review state) and their photo paths
        ("" for an event kept without a photo)."""
        return self._purge_photos(intruders, before, dry_run)

    def purge_uncertain(self, before: date, dry_run: bool = False) -> Expired:
        """Uncertain faces of days before ``before`` (any review state) and their crops."""
        return self._purge_photos(uncertain_table, before, dry_run)

    def _purge_photos(self, table: Table, before: date, dry_run: bool) -> Expired:
        where = table.c.day < before
        with self._begin() as conn:
            paths = [r[0] for r in conn.execute(select(table.c.path).where(where))]
            rows = _purge(conn, table, where, dry_run)
        return Expired(rows, [p for p in paths if p])

    def purge_register(self, before: date, dry_run: bool = False) -> dict[str, int]:
        """Marks, corrections and sightings of days before ``before``: rows per table (and
        the tallies of those days, which statistics would otherwise still count)."""
        with self._begin() as conn:
            done = {
                table.name: _purge(conn, table, table.c.day < before, dry_run)
                for table in (marks, corrections, sightings)
            }
            if not dry_run:
                for table in (day_tallies, tallied_days):
                    conn.execute(delete(table).where(table.c.day < before))
            return done

    def purge_audit(self, before: datetime, dry_run: bool = False) -> int:
        """Audit entries written before ``before`` (UTC)."""
        with self._begin() as conn:
            return _purge(conn, audit, audit.c.at < before, dry_run)

    def orphan_faces(self) -> int:
        """Cached faces (descriptors) no photo row uses: what ``prune_face_cache`` drops."""
        with self._begin() as conn:
            unused = face_cache.c.sha256.not_in(select(photos.c.sha256))
            return int(
                conn.execute(
                    select(func.count()).select_from(face_cache).where(unused)
                ).scalar_one()
            )

    # --- once-a-day jobs ----------------------------------------------------------------------

    def claim_job(self, job: str, day: date, now: datetime, lease: timedelta, owner: str) -> bool:
        """Claim ``job`` for ``day`` (``now``: UTC) for this process; False when it is done,
        another process holds it, or its retry is not due yet. Atomic across processes."""
        try:
            with self._begin() as conn:
                conn.execute(
                    job_runs.insert().values(
                        job=job,
                        day=day,
                        status=RUNNING,
                        owner=owner[:64],
                        lease_until=now + lease,
                        detail="",
                    )
                )
            return True
        except IntegrityError:
            pass
        # A failed run's lease_until is the time its retry is due.
        due = (job_runs.c.status.in_([FAILED, RUNNING])) & (job_runs.c.lease_until < now)
        with self._begin() as conn:
            result = conn.execute(
                update(job_runs)
                .where(job_runs.c.job == job, job_runs.c.day == day, due)
                .values(status=RUNNING, lease_until=now + lease, owner=owner[:64])
            )
        return bool(result.rowcount == 1)

    def finish_job(
        self, job: str, day: date, ok: bool, detail: str, retry_at: datetime | None = None
    ) -> None:
        """Record the outcome of a claimed run; a failed one may be claimed again from
        ``retry_at`` (UTC)."""
        values: dict[str, object] = {"status": DONE if ok else FAILED, "detail": detail[:1024]}
        if retry_at is not None:
            values["lease_until"] = retry_at
        with self._begin() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.job == job, job_runs.c.day == day)
                .values(**values)
            )

    def job_status(self, job: str, day: date) -> str | None:
        """running | done | failed, or None when nobody claimed the day yet."""
        with self._begin() as conn:
            row = conn.execute(
                select(job_runs.c.status).where(job_runs.c.job == job, job_runs.c.day == day)
            ).first()
        return str(row[0]) if row else None
