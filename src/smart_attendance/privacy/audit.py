"""``AuditLog``: who viewed a student's page, exported, corrected, erased, changed consent or
a setting, and when. Readable by admins (dashboard Admin > Audit, ``attendance audit``); kept
``ATTENDANCE_RETAIN_AUDIT_DAYS``. An erased student's entries keep only an opaque id.

Actors are written ``user:NAME`` (the dashboard), ``cli:USER`` (a command, as the operating
system's user), ``api`` (the master key), ``camera:ID`` or ``server``.
"""

from __future__ import annotations

import getpass
import logging
from datetime import UTC, datetime

from ..attendance.corrections import BulkCorrected, Corrected
from ..db.privacy import AuditEntry
from ..db.store import Store
from ..errors import StoreError
from ..models import Clock

log = logging.getLogger(__name__)

# What the log records (the dashboard's filter offers these).
ACTIONS = (
    "view",  # a student's page or record was looked at
    "export",  # a subject access export, or a register export
    "correct",  # a mark corrected, excused or undone
    "consent",  # consent given, refused or withdrawn
    "erase",  # a student erased (subject: an opaque id)
    "photos",  # enrolment photos added or removed
    "review",  # an intruder or uncertain face decided
    "badge",  # badges printed or revoked
    "purge",  # the retention purge
    "settings",  # settings changed between two starts, a data key rotated, a user changed
)


def cli_actor() -> str:
    """``cli:USER``, the operating system's user running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


class AuditLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def record(self, actor: str, action: str, subject: str = "", detail: str = "") -> None:
        """Keep one entry. The audit never fails the action it records: a database error is
        logged (without the subject) and the action stands."""
        at = self.clock().astimezone(UTC).replace(tzinfo=None)
        try:
            self.store.record_audit(at, actor, action, subject, detail)
        except StoreError as exc:
            log.error("could not write the audit log (%s by %s): %s", action, actor, exc)

    def corrected(self, actor: str, done: Corrected) -> None:
        """Keep a correction (or an undo) that changed a status."""
        if done.changed:
            entry = done.entry
            self.record(
                actor,
                "correct",
                entry.student,
                f"{entry.status or 'undone'}: {entry.class_name} {entry.period} on "
                f"{entry.day.isoformat()}",
            )

    def bulk_corrected(self, actor: str, subject: str, done: BulkCorrected) -> None:
        """Keep a bulk correction (a student's days, a class period) that changed anything."""
        if done.changed:
            first, last = done.changed[0], done.changed[-1]
            span = first.day.isoformat()
            if last.day != first.day:
                span += f" to {last.day.isoformat()}"
            self.record(
                actor,
                "correct",
                subject,
                f"{first.status}: {len(done.changed)} class periods, {span}",
            )

    def entries(
        self, limit: int = 200, subject: str | None = None, since: datetime | None = None
    ) -> list[AuditEntry]:
        return self.store.audit_entries(limit, subject, since)
