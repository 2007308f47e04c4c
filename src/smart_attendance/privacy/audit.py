"""``AuditLog``: who viewed a student's page, exported (a student's record or the register),
corrected, erased, changed consent, an account or a setting, and when. Readable by admins
(dashboard Admin > Audit, ``attendance audit``); kept ``ATTENDANCE_RETAIN_AUDIT_DAYS``. An
erased student's entries keep only an opaque id.

A change to the database (a correction, an account) writes its entry in its own transaction
(``db/audit.py``): both are kept or neither. A register export is recorded before it is handed
over. Other entries (``record``) are best effort: a failure is logged and the action stands.

Actors are written ``user:NAME`` (the dashboard), ``cli:USER`` (a command, as the operating
system's user), ``api`` (the master key), ``camera:ID`` or ``server``.
"""

from __future__ import annotations

import getpass
import logging
from datetime import UTC, datetime

from ..attendance.export import ExportFile
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
    "settings",  # settings changed between two starts, a data key rotated, a camera key or an
    # account (subject user:NAME) added or changed
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

    def exported(self, actor: str, made: ExportFile) -> None:
        """Keep a register export (``/export.csv``, the Reports page, ``attendance export``)
        before it is handed over: an export that cannot be recorded is not given
        (``StoreError``)."""
        at = self.clock().astimezone(UTC).replace(tzinfo=None)
        self.store.record_audit(at, actor, "export", "", f"register {made.name}")

    def entries(
        self, limit: int = 200, subject: str | None = None, since: datetime | None = None
    ) -> list[AuditEntry]:
        return self.store.audit_entries(limit, subject, since)
